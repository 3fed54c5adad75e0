package maoctl

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"

	"github.com/urfave/cli/v2"

	"github.com/mao-research/mao/api"
	"github.com/mao-research/mao/detector"
)

// seriesTail is how many of a series' points tool series lists without
// --all-points.
const seriesTail = 20

func (c *ctl) toolSeries(cCtx *cli.Context) error {
	a, err := args(cCtx, "NAME")
	if err != nil {
		return err
	}
	list, err := c.client.Series(cCtx.Context, a[0], cCtx.String("metric"), cCtx.String("site"))
	if err != nil {
		return err
	}
	if file := cCtx.String("svg"); file != "" {
		return c.plotSeries(cCtx.Context, a[0], list, file)
	}
	return printList(c, list, "no values of tool "+a[0], func(list []api.Series) error {
		for i, s := range list {
			if i > 0 {
				fmt.Fprintln(c.stdout)
			}
			if err := writeSeries(c.stdout, s, cCtx.Bool("all-points")); err != nil {
				return err
			}
		}
		return nil
	})
}

// writeSeries prints one series: a header line, its sparkline and a table
// of its last points, or of all of them.
func writeSeries(w io.Writer, s api.Series, all bool) error {
	values := make([]float64, len(s.Points))
	spikes := make([]bool, len(s.Points))
	for i, p := range s.Points {
		values[i], spikes[i] = p.Value, p.Spike
	}
	fmt.Fprintf(w, "%s at %s, metric %s: %s, %s\n", s.Tool, s.Site, s.Metric,
		plural(len(values), "point"), plural(count(spikes), "spike"))
	if len(values) == 0 {
		return nil
	}
	if err := writeSparkline(w, values, spikes); err != nil {
		return err
	}
	points := s.Points
	if !all && len(points) > seriesTail {
		fmt.Fprintf(w, "the last %d points (--all-points lists every one):\n", seriesTail)
		points = points[len(points)-seriesTail:]
	}
	tab := newTable(w, "TIME", "RUN", "VALUE", "SPIKE")
	for _, p := range points {
		spike := ""
		if p.Spike {
			spike = "spike"
		}
		tab.rawRow(timestamp(&p.Time), cell(p.Run), number(p.Value), spike)
	}
	return tab.flush()
}

// count is how many of bs are true.
func count(bs []bool) int {
	n := 0
	for _, b := range bs {
		if b {
			n++
		}
	}
	return n
}

// plural is "1 spike", "2 spikes", "no spikes".
func plural(n int, noun string) string {
	switch n {
	case 0:
		return "no " + noun + "s"
	case 1:
		return "1 " + noun
	}
	return fmt.Sprintf("%d %ss", n, noun)
}

// svgResult is what `tool series --svg -o json` prints.
type svgResult struct {
	Tool   string `json:"tool"`
	File   string `json:"file"`
	Series int    `json:"series"`
}

// plotSeries writes the tool's series as an SVG plot to file, with the
// band of its detector's settings today.
func (c *ctl) plotSeries(ctx context.Context, tool string, list api.List[api.Series], file string) error {
	if len(list.Items) == 0 {
		return fmt.Errorf("no values of tool %s to plot", tool)
	}
	// The band is the detector's settings today; a tool removed since
	// keeps its series, plotted without a band.
	cfg := &detector.Config{}
	if t, err := c.client.Tool(ctx, tool); err == nil && t.Detector != nil {
		cfg = t.Detector
	} else if apiErr := (*api.Error)(nil); errors.As(err, &apiErr) && apiErr.Status == http.StatusNotFound {
		cfg = nil
	} else if err != nil {
		return err
	}
	var b bytes.Buffer
	if err := writeSVG(&b, tool, list.Items, cfg); err != nil {
		return err
	}
	if err := os.WriteFile(file, b.Bytes(), 0o644); err != nil {
		return fmt.Errorf("write the plot: %w", err)
	}
	if c.json {
		return writeJSON(c.stdout, svgResult{Tool: tool, File: file, Series: len(list.Items)})
	}
	_, err := fmt.Fprintf(c.stdout, "wrote the plot of %d series of tool %s to %s\n", len(list.Items), tool, file)
	return err
}
