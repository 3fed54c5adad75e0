package maoctl

import (
	"fmt"
	"io"
	"math"
	"os"
	"strconv"
	"strings"

	"github.com/urfave/cli/v2"

	"github.com/mao-research/mao/api"
	"github.com/mao-research/mao/detector"
)

func (c *ctl) detectorCommand() *cli.Command {
	return &cli.Command{
		Name:  "detector",
		Usage: "try spike detector settings on your own numbers, offline",
		Subcommands: []*cli.Command{
			{
				Name:      "check",
				Usage:     "judge every value of a CSV column as the orchestrator would judge each run's value",
				ArgsUsage: "FILE.csv|-",
				Description: "Reads one column of FILE (- for standard input), oldest value first, and judges each value\n" +
					"against the ones before it with the given settings, those of a tool spec's detector: block.\n" +
					"It needs no orchestrator. It exits 0 whether or not it finds spikes.",
				Flags: []cli.Flag{
					&cli.StringFlag{Name: "column", Usage: "the column's header name or 1-based index", DefaultText: "the first"},
					&cli.StringFlag{Name: "method", Usage: "mad, zscore or gain (the predecessor's rule)", DefaultText: detector.MethodMAD},
					&cli.IntFlag{Name: "window", Usage: "compare with the last `W` values (gain: always the 2 previous)", DefaultText: "30"},
					&cli.Float64Flag{Name: "threshold", Usage: "spike when the score is beyond `K`", DefaultText: "3.5 mad, 3 zscore, 20% gain"},
					&cli.IntFlag{Name: "min-history", Usage: "judge a value only once `N` earlier values exist", DefaultText: "5, gain 2"},
					&cli.StringFlag{Name: "direction", Usage: "which changes may spike: up, down or both", DefaultText: "both"},
					&cli.Float64Flag{Name: "floor", Usage: "changes smaller than `X` are never spikes", DefaultText: "0"},
				},
				Action: c.detectorCheck,
			},
		},
	}
}

func (c *ctl) detectorCheck(cCtx *cli.Context) error {
	a, err := args(cCtx, "FILE.csv|-")
	if err != nil {
		return err
	}
	cfg := detector.Config{
		Method:     cCtx.String("method"),
		Window:     cCtx.Int("window"),
		Threshold:  cCtx.Float64("threshold"),
		MinHistory: cCtx.Int("min-history"),
		Direction:  cCtx.String("direction"),
		Floor:      cCtx.Float64("floor"),
		Column:     cCtx.String("column"),
	}
	if problems := cfg.Problems(); len(problems) > 0 {
		details := make([]string, len(problems))
		for i, p := range problems {
			details[i] = "--" + strings.ReplaceAll(p.Field, "_", "-") + ": " + p.Problem
		}
		return usageError{err: fmt.Errorf("%s: invalid settings", commandName(cCtx)), details: details}
	}
	values, err := c.readValues(a[0], cfg.Column)
	if err != nil {
		return err
	}
	verdicts := detector.Scan(values, cfg)
	if c.json {
		return writeJSON(c.stdout, verdicts)
	}
	cfg = cfg.WithDefaults()
	spikes := make([]bool, len(verdicts))
	tab := newTable(c.stdout, "N", "VALUE", "BASELINE", "SCORE", "VERDICT")
	for i, v := range verdicts {
		spikes[i] = v.Spike
		tab.row(strconv.Itoa(i+1), number(values[i]), optional(v.Baseline, rounded), optional(v.Score, scoreFunc(v.Method)), v.Status)
	}
	if err := tab.flush(); err != nil {
		return err
	}
	fmt.Fprintln(c.stdout)
	if err := writeSparkline(c.stdout, values, spikes); err != nil {
		return err
	}
	settings := settingsText(cfg, cCtx.IsSet("min-history"))
	_, err = fmt.Fprintf(c.stdout, "%s in %s (%s)\n", plural(count(spikes), "spike"), plural(len(values), "value"), settings)
	return err
}

// readValues reads the column of the CSV file name, standard input for
// "-".
func (c *ctl) readValues(name, column string) ([]float64, error) {
	var r io.Reader = c.stdin
	if name == "-" {
		name = "standard input"
	} else {
		f, err := os.Open(name)
		if err != nil {
			return nil, err // names the file
		}
		defer f.Close()
		r = f
	}
	values, err := detector.ReadColumn(r, column)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", name, err)
	}
	return values, nil
}

// settingsText describes the detector settings the verdicts were made
// with, "method mad, window 30, threshold 3.5", and the minimum history,
// direction and floor when they were given.
func settingsText(cfg detector.Config, minHistory bool) string {
	parts := []string{"method " + cfg.Method}
	if cfg.Method == detector.MethodGain {
		parts = append(parts, "threshold "+number(cfg.Threshold)+"%")
	} else {
		parts = append(parts, "window "+strconv.Itoa(cfg.Window), "threshold "+number(cfg.Threshold))
	}
	if minHistory {
		parts = append(parts, "min history "+strconv.Itoa(cfg.MinHistory))
	}
	if cfg.Direction != "both" {
		parts = append(parts, "direction "+cfg.Direction)
	}
	if cfg.Floor > 0 {
		parts = append(parts, "floor "+number(cfg.Floor))
	}
	return strings.Join(parts, ", ")
}

// writeVerdicts writes the Detector section of run show: per verdict the
// metric, the status and what the detector saw.
func writeVerdicts(w io.Writer, verdicts []api.Verdict) error {
	if _, err := fmt.Fprintln(w, "\nDetector:"); err != nil {
		return err
	}
	tab := newTable(w)
	for _, v := range verdicts {
		tab.rawRow("  "+cell(v.Metric), v.Status, verdictDetails(v))
	}
	return tab.flush()
}

// verdictDetails is what a verdict saw, e.g. "value 50 vs baseline 5
// (score 12.1 > 3.5, mad): <reason>".
func verdictDetails(v api.Verdict) string {
	var b strings.Builder
	if v.Value != nil {
		fmt.Fprintf(&b, "value %s", number(*v.Value))
	}
	if v.Baseline != nil {
		fmt.Fprintf(&b, " vs baseline %s", rounded(*v.Baseline))
	}
	switch {
	case v.Score != nil:
		fmt.Fprintf(&b, " (score %s, %s)", scoreComparison(*v.Score, v.Threshold, v.Method), v.Method)
	case v.Baseline != nil:
		fmt.Fprintf(&b, " (%s)", v.Method)
	}
	if b.Len() > 0 {
		b.WriteString(": ")
	}
	b.WriteString(cell(v.Reason))
	return b.String()
}

// scoreComparison sets a score against the threshold on its side: "12.1 >
// 3.5", "-1.2 >= -3.5". Gain scores are percentages.
func scoreComparison(score, threshold float64, method string) string {
	text, limit := scoreFunc(method)(score), number(threshold)
	if method == detector.MethodGain {
		limit += "%"
	}
	switch {
	case score >= 0 && score > threshold:
		return text + " > " + limit
	case score >= 0:
		return text + " <= " + limit
	case -score > threshold:
		return text + " < -" + limit
	}
	return text + " >= -" + limit
}

// scoreFunc formats the scores of method: with one decimal, in percent for
// gain.
func scoreFunc(method string) func(float64) string {
	return func(s float64) string {
		text := strconv.FormatFloat(s, 'f', 1, 64)
		if math.Abs(s) >= 1e6 {
			text = strconv.FormatFloat(s, 'e', 2, 64)
		}
		if method == detector.MethodGain {
			text += "%"
		}
		return text
	}
}

// optional formats *v, "" when v is nil.
func optional(v *float64, format func(float64) string) string {
	if v == nil {
		return ""
	}
	return format(*v)
}
