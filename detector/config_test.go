package detector

import (
	"math"
	"slices"
	"strings"
	"testing"
)

func TestWithDefaults(t *testing.T) {
	tests := []struct {
		name string
		in   Config
		want Config
	}{
		{"zero value is the contract with mad", Config{},
			Config{Method: "mad", Window: 30, Threshold: 3.5, MinHistory: 5, Direction: "both", Format: "csv", Metric: "control"}},
		{"zscore", Config{Method: "zscore"},
			Config{Method: "zscore", Window: 30, Threshold: 3, MinHistory: 5, Direction: "both", Format: "csv", Metric: "control"}},
		{"gain keeps window unset", Config{Method: "gain"},
			Config{Method: "gain", Threshold: 20, MinHistory: 2, Direction: "both", Format: "csv", Metric: "control"}},
		{"small window lowers min_history", Config{Window: 3},
			Config{Method: "mad", Window: 3, Threshold: 3.5, MinHistory: 3, Direction: "both", Format: "csv", Metric: "control"}},
		{"set fields are kept", Config{Method: "mad", Window: 10, Threshold: 5, MinHistory: 7, Direction: "up", Floor: 2, Metric: "m"},
			Config{Method: "mad", Window: 10, Threshold: 5, MinHistory: 7, Direction: "up", Floor: 2, Format: "csv", Metric: "m"}},
		{"json by extension, all keys", Config{File: "out/*.JSON"},
			Config{Method: "mad", Window: 30, Threshold: 3.5, MinHistory: 5, Direction: "both", File: "out/*.JSON", Format: "json"}},
		{"csv column by header", Config{File: "r.csv", Column: " loss "},
			Config{Method: "mad", Window: 30, Threshold: 3.5, MinHistory: 5, Direction: "both", File: "r.csv", Column: " loss ", Format: "csv", Metric: "loss"}},
		{"csv column by index", Config{File: "r.csv", Column: "2"},
			Config{Method: "mad", Window: 30, Threshold: 3.5, MinHistory: 5, Direction: "both", File: "r.csv", Column: "2", Format: "csv", Metric: "column 2"}},
		{"csv first cell of another file", Config{File: "r.txt"},
			Config{Method: "mad", Window: 30, Threshold: 3.5, MinHistory: 5, Direction: "both", File: "r.txt", Format: "csv", Metric: "value"}},
		{"contract file with a column stays control", Config{Column: "x"},
			Config{Method: "mad", Window: 30, Threshold: 3.5, MinHistory: 5, Direction: "both", Column: "x", Format: "csv", Metric: "control"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if got := tc.in.WithDefaults(); got != tc.want {
				t.Errorf("WithDefaults() =\n%+v\nwant\n%+v", got, tc.want)
			}
			if got := tc.in.WithDefaults().WithDefaults(); got != tc.want {
				t.Errorf("WithDefaults is not idempotent: %+v", got)
			}
		})
	}
}

func TestProblems(t *testing.T) {
	tests := []struct {
		name   string
		c      Config
		fields []string // fields named, in order; nil means valid
		want   string   // a substring of the first problem
	}{
		{"zero value", Config{}, nil, ""},
		{"full mad", Config{Method: "mad", Window: 100, Threshold: 4, MinHistory: 10, Direction: "up", Floor: 0.5, File: "out/*.csv", Column: "loss", Metric: "loss"}, nil, ""},
		{"gain ignores window", Config{Method: "gain", Window: 1, Threshold: 6}, nil, ""},
		{"gain waits longer", Config{Method: "gain", MinHistory: 10}, nil, ""},
		{"json file", Config{File: "metrics.json", Metric: "accuracy"}, nil, ""},
		{"explicit json format", Config{File: "metrics.txt", Format: "json"}, nil, ""},
		{"column by index", Config{Column: "3"}, nil, ""},
		{"unknown method", Config{Method: "MAD"}, []string{"method"}, `"MAD" is not mad, zscore or gain`},
		{"negative window", Config{Window: -1}, []string{"window"}, "must not be negative"},
		{"window too small", Config{Method: "zscore", Window: 2}, []string{"window"}, "zscore needs at least 3"},
		{"negative threshold", Config{Threshold: -1}, []string{"threshold"}, "must not be negative"},
		{"NaN threshold", Config{Threshold: math.NaN()}, []string{"threshold"}, "finite"},
		{"infinite floor", Config{Floor: math.Inf(1)}, []string{"floor"}, "finite"},
		{"negative floor", Config{Floor: -0.1}, []string{"floor"}, "must not be negative"},
		{"negative min_history", Config{MinHistory: -3}, []string{"min_history"}, "must not be negative"},
		{"min_history too small", Config{MinHistory: 1}, []string{"min_history"}, "at least 3"},
		{"gain min_history too small", Config{Method: "gain", MinHistory: 1}, []string{"min_history"}, "2 previous values"},
		{"min_history above window", Config{Window: 10, MinHistory: 11}, []string{"min_history"}, "larger than the window 10"},
		{"min_history above default window", Config{MinHistory: 31}, []string{"min_history"}, "larger than the window 30"},
		{"unknown direction", Config{Direction: "sideways"}, []string{"direction"}, "not both, up or down"},
		{"absolute file", Config{File: "/etc/passwd"}, []string{"file"}, "relative"},
		{"escaping file", Config{File: "../x.csv"}, []string{"file"}, "relative"},
		{"dot file", Config{File: "."}, []string{"file"}, "relative"},
		{"bad glob", Config{File: "control-[.csv"}, []string{"file"}, "not a valid glob"},
		{"unknown format", Config{File: "x.xml", Format: "xml"}, []string{"format"}, `"xml" is not csv or json`},
		{"json contract", Config{Format: "json"}, []string{"format"}, "json needs a file"},
		{"column with json", Config{File: "m.json", Column: "a"}, []string{"column"}, "only for CSV"},
		{"column zero", Config{Column: "0"}, []string{"column"}, "start at 1"},
		{"negative column", Config{Column: "-2"}, []string{"column"}, "start at 1"},
		{"blank column", Config{Column: "  "}, []string{"column"}, "blank"},
		{"padded metric", Config{Metric: " m"}, []string{"metric"}, "spaces"},
		{"everything at once", Config{Method: "x", Window: -1, Threshold: -1, MinHistory: -1, Direction: "x", Floor: -1, File: "/x", Format: "x", Column: "0"},
			[]string{"method", "window", "threshold", "min_history", "direction", "floor", "file", "format", "column"}, ""},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			ps := tc.c.Problems()
			var fields []string
			for _, p := range ps {
				fields = append(fields, p.Field)
			}
			if !slices.Equal(fields, tc.fields) {
				t.Fatalf("fields = %v, want %v (%v)", fields, tc.fields, ps)
			}
			if tc.want != "" && !strings.Contains(ps[0].Problem, tc.want) {
				t.Errorf("problem %q does not contain %q", ps[0].Problem, tc.want)
			}
			if tc.fields == nil {
				if ps := tc.c.WithDefaults().Problems(); ps != nil {
					t.Errorf("valid settings with defaults have problems: %v", ps)
				}
			}
			if err := tc.c.err(); (err != nil) != (tc.fields != nil) {
				t.Errorf("err() = %v", err)
			}
		})
	}
}
