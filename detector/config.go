package detector

import (
	"errors"
	"fmt"
	"io/fs"
	"math"
	"path"
	"strconv"
	"strings"
)

// Methods.
const (
	MethodMAD    = "mad"    // median and median absolute deviation of the window
	MethodZScore = "zscore" // mean and sample standard deviation of the window
	MethodGain   = "gain"   // the predecessor's rule: percent change on the average of the 2 previous values
)

// Directions.
const (
	DirectionBoth = "both"
	DirectionUp   = "up"
	DirectionDown = "down"
)

// Formats of the metric file.
const (
	FormatCSV  = "csv"
	FormatJSON = "json"
)

// Defaults for unset Config fields.
const (
	DefaultWindow          = 30
	DefaultThresholdMAD    = 3.5
	DefaultThresholdZScore = 3
	DefaultThresholdGain   = 20 // percent
	DefaultMinHistory      = 5  // mad and zscore; never more than the window
	DefaultMinHistoryGain  = 2

	// ContractPattern names the files of the MAO tool contract: each run
	// writes one, holding a single number in its first cell.
	ContractPattern = "control-*.csv"
	// ContractMetric is the metric name of a contract file's value.
	ContractMetric = "control"
)

// minWindow is the smallest window or history with a meaningful spread.
const minWindow = 3

// Config is a tool's detector settings, the tool spec's `detector:` block.
// The zero value means the defaults: mad over the last 30 values of the
// contract file's number.
type Config struct {
	Method     string  `json:"method,omitempty" yaml:"method,omitempty"`           // "mad" (default), "gain", "zscore"
	Window     int     `json:"window,omitempty" yaml:"window,omitempty"`           // the last W earlier values; default 30; gain always uses the 2 previous
	Threshold  float64 `json:"threshold,omitempty" yaml:"threshold,omitempty"`     // k; default 3.5 (mad), 3 (zscore), 20 (gain, in percent)
	MinHistory int     `json:"min_history,omitempty" yaml:"min_history,omitempty"` // earlier values needed before any verdict; default 5 (mad, zscore), 2 (gain)
	Direction  string  `json:"direction,omitempty" yaml:"direction,omitempty"`     // "both" (default), "up", "down"
	Floor      float64 `json:"floor,omitempty" yaml:"floor,omitempty"`             // changes |x-baseline| smaller than this are never spikes; default 0

	// Where the metric comes from, in the data folder.
	File   string `json:"file,omitempty" yaml:"file,omitempty"`     // "" = the newest control-*.csv; else a slash-separated file name or glob, newest match by name
	Column string `json:"column,omitempty" yaml:"column,omitempty"` // CSV only: header name or 1-based index, value from the last row; "" = first cell of the first row
	Format string `json:"format,omitempty" yaml:"format,omitempty"` // "csv" or "json"; default by the file's extension (.json is json, else csv)
	Metric string `json:"metric,omitempty" yaml:"metric,omitempty"` // CSV: the metric's name; JSON: the one key to read (default every numeric key)
}

// Problem is one invalid field of a Config.
type Problem struct {
	Field   string // JSON name of the field, e.g. "window"
	Problem string // what is wrong, in words
}

// WithDefaults returns c with every unset field set to its default. An
// unknown method keeps its name and gets the mad defaults; Problems reports
// it.
func (c Config) WithDefaults() Config {
	if c.Method == "" {
		c.Method = MethodMAD
	}
	if c.Direction == "" {
		c.Direction = DirectionBoth
	}
	if c.Format == "" {
		c.Format = FormatCSV
		if strings.EqualFold(path.Ext(c.File), ".json") {
			c.Format = FormatJSON
		}
	}
	if c.Metric == "" && c.Format == FormatCSV {
		c.Metric = c.csvMetric()
	}
	switch c.Method {
	case MethodGain:
		if c.Threshold == 0 {
			c.Threshold = DefaultThresholdGain
		}
		if c.MinHistory == 0 {
			c.MinHistory = DefaultMinHistoryGain
		}
		return c
	case MethodZScore:
		if c.Threshold == 0 {
			c.Threshold = DefaultThresholdZScore
		}
	default:
		if c.Threshold == 0 {
			c.Threshold = DefaultThresholdMAD
		}
	}
	if c.Window == 0 {
		c.Window = DefaultWindow
	}
	if c.MinHistory == 0 {
		c.MinHistory = min(DefaultMinHistory, max(c.Window, minWindow))
	}
	return c
}

// csvMetric is the default name of a CSV metric: "control" for the contract
// file, the header name or "column N" for a column, "value" for the first
// cell of another file.
func (c Config) csvMetric() string {
	if c.File == "" {
		return ContractMetric
	}
	col := strings.TrimSpace(c.Column)
	if col == "" {
		return "value"
	}
	if n, err := strconv.Atoi(col); err == nil {
		return "column " + strconv.Itoa(n)
	}
	return col
}

// span is the number of earlier values a verdict compares with.
func (c Config) span() int {
	if c.Method == MethodGain {
		return 2
	}
	return c.Window
}

// Problems lists every invalid field of c, nil when c is valid. Fields are
// checked as given; unset fields take their defaults.
func (c Config) Problems() []Problem {
	var ps []Problem
	add := func(field, format string, args ...any) {
		ps = append(ps, Problem{Field: field, Problem: fmt.Sprintf(format, args...)})
	}
	d := c.WithDefaults()
	gain := d.Method == MethodGain
	switch d.Method {
	case MethodMAD, MethodZScore, MethodGain:
	default:
		add("method", "%q is not mad, zscore or gain", c.Method)
	}
	switch {
	case c.Window < 0:
		add("window", "%d must not be negative", c.Window)
	case !gain && c.Window > 0 && c.Window < minWindow:
		add("window", "%d is too small: %s needs at least %d values", c.Window, d.Method, minWindow)
	}
	switch {
	case math.IsNaN(c.Threshold) || math.IsInf(c.Threshold, 0):
		add("threshold", "%v must be a finite number", c.Threshold)
	case c.Threshold < 0:
		add("threshold", "%v must not be negative", c.Threshold)
	}
	switch {
	case c.MinHistory < 0:
		add("min_history", "%d must not be negative", c.MinHistory)
	case c.MinHistory == 0:
	case gain && c.MinHistory < 2:
		add("min_history", "%d is too small: gain needs the 2 previous values", c.MinHistory)
	case !gain && c.MinHistory < minWindow:
		add("min_history", "%d is too small: %s needs at least %d values", c.MinHistory, d.Method, minWindow)
	case !gain && c.Window >= 0 && c.MinHistory > d.Window:
		add("min_history", "%d is larger than the window %d", c.MinHistory, d.Window)
	}
	switch d.Direction {
	case DirectionBoth, DirectionUp, DirectionDown:
	default:
		add("direction", "%q is not both, up or down", c.Direction)
	}
	switch {
	case math.IsNaN(c.Floor) || math.IsInf(c.Floor, 0):
		add("floor", "%v must be a finite number", c.Floor)
	case c.Floor < 0:
		add("floor", "%v must not be negative", c.Floor)
	}
	if c.File != "" {
		if err := checkPattern(c.File); err != nil {
			add("file", "%s", err)
		}
	}
	switch d.Format {
	case FormatCSV:
	case FormatJSON:
		if c.File == "" {
			add("format", "json needs a file: the contract file %s is CSV", ContractPattern)
		}
		if c.Column != "" {
			add("column", "is only for CSV; a JSON file gives one metric per numeric key")
		}
	default:
		add("format", "%q is not csv or json", c.Format)
	}
	if d.Format != FormatJSON && c.Column != "" {
		if err := checkColumn(c.Column); err != nil {
			add("column", "%s", err)
		}
	}
	if c.Metric != "" && strings.TrimSpace(c.Metric) != c.Metric {
		add("metric", "%q must not start or end with spaces", c.Metric)
	}
	return ps
}

// err joins c's problems into one error, nil when c is valid.
func (c Config) err() error {
	ps := c.Problems()
	if len(ps) == 0 {
		return nil
	}
	msgs := make([]string, len(ps))
	for i, p := range ps {
		msgs[i] = p.Field + ": " + p.Problem
	}
	return errors.New("invalid detector settings: " + strings.Join(msgs, "; "))
}

// checkPattern accepts a slash-separated file name or glob inside the data
// folder.
func checkPattern(p string) error {
	if !fs.ValidPath(p) || p == "." {
		return fmt.Errorf("%q must be a relative slash-separated path inside the data folder, without . or .. elements", p)
	}
	if _, err := path.Match(p, ""); err != nil {
		return fmt.Errorf("%q is not a valid glob: %w", p, err)
	}
	return nil
}

// checkColumn accepts a header name or a 1-based index.
func checkColumn(col string) error {
	trimmed := strings.TrimSpace(col)
	if trimmed == "" {
		return fmt.Errorf("%q is blank", col)
	}
	if n, err := strconv.Atoi(trimmed); err == nil && n < 1 {
		return fmt.Errorf("%d: column indexes start at 1", n)
	}
	return nil
}
