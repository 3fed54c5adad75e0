package detector

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

// writeFiles creates files (slash-separated name → content) under dir.
func writeFiles(t *testing.T, dir string, files map[string]string) {
	t.Helper()
	for name, content := range files {
		p := filepath.Join(dir, filepath.FromSlash(name))
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
}

func TestExtract(t *testing.T) {
	tests := []struct {
		name    string
		files   map[string]string
		c       Config
		want    []Metric
		wantErr string
	}{
		{"contract file", map[string]string{"control-1.csv": "42\n", "notes.txt": "x"}, Config{},
			[]Metric{{"control", 42, "control-1.csv"}}, ""},
		{"newest contract file by name", map[string]string{"control-20250301T000000.csv": "1", "control-20250302T000000.csv": "2", "control-20250228T235959.csv": "3"}, Config{},
			[]Metric{{"control", 2, "control-20250302T000000.csv"}}, ""},
		{"numbers in names compare as numbers", map[string]string{"control-9.csv": "9", "control-10.csv": "10", "control-1.csv": "1"}, Config{},
			[]Metric{{"control", 10, "control-10.csv"}}, ""},
		{"first cell of the first row only", map[string]string{"control-1.csv": " -3.5e2 , x\nnot, read\n"}, Config{},
			[]Metric{{"control", -350, "control-1.csv"}}, ""},
		{"byte order mark", map[string]string{"control-1.csv": "\ufeff7\n"}, Config{},
			[]Metric{{"control", 7, "control-1.csv"}}, ""},
		{"quoted cell", map[string]string{"control-1.csv": "\"0.25\"\r\n"}, Config{},
			[]Metric{{"control", 0.25, "control-1.csv"}}, ""},
		{"a directory named like a control file is skipped", map[string]string{"control-1.csv": "1", "control-2.csv/x": "2"}, Config{},
			[]Metric{{"control", 1, "control-1.csv"}}, ""},
		{"contract files in subfolders are not read", map[string]string{"sub/control-1.csv": "1"}, Config{},
			nil, "no control-*.csv in the output"},
		{"no contract file", map[string]string{"out.csv": "1"}, Config{},
			nil, "no control-*.csv in the output"},
		{"not a number", map[string]string{"control-3.csv": "abc\n"}, Config{},
			nil, `control-3.csv: first cell "abc" is not a number`},
		{"empty cell", map[string]string{"control-3.csv": " ,1\n"}, Config{},
			nil, "control-3.csv: first cell is an empty cell"},
		{"NaN", map[string]string{"control-3.csv": "NaN"}, Config{},
			nil, `control-3.csv: first cell "NaN" is not a finite number`},
		{"infinity", map[string]string{"control-3.csv": "-Inf"}, Config{},
			nil, `"-Inf" is not a finite number`},
		{"out of range", map[string]string{"control-3.csv": "1e999"}, Config{},
			nil, `"1e999" is out of range`},
		{"empty file", map[string]string{"control-3.csv": ""}, Config{},
			nil, "control-3.csv: the file is empty"},
		{"blank lines only", map[string]string{"control-3.csv": "\n\n"}, Config{},
			nil, "control-3.csv: the file is empty"},
		{"bad quoting", map[string]string{"control-3.csv": "1\"2"}, Config{},
			nil, "control-3.csv: parse error"},
		{"binary garbage", map[string]string{"control-3.csv": "\x00\xff\x01"}, Config{},
			nil, "is not a number"},
		{"column by header, last row", map[string]string{"results.csv": "step,loss,acc\n1,0.9,0.1\n2,0.5,0.6\n3, 0.25 ,0.8\n"}, Config{File: "results.csv", Column: "loss"},
			[]Metric{{"loss", 0.25, "results.csv"}}, ""},
		{"header names are trimmed", map[string]string{"results.csv": "step, loss \n1,2\n"}, Config{File: "results.csv", Column: "loss", Metric: "training loss"},
			[]Metric{{"training loss", 2, "results.csv"}}, ""},
		{"column by index, last row", map[string]string{"results.csv": "step,loss\n1,0.9\n2,0.5\n"}, Config{File: "results.csv", Column: "2"},
			[]Metric{{"column 2", 0.5, "results.csv"}}, ""},
		{"column by index in a single row", map[string]string{"r.csv": "1,2,3\n"}, Config{File: "r.csv", Column: "3"},
			[]Metric{{"column 3", 3, "r.csv"}}, ""},
		{"rows of different lengths", map[string]string{"r.csv": "a,b,c\n1\n4,5,6\n"}, Config{File: "r.csv", Column: "c"},
			[]Metric{{"c", 6, "r.csv"}}, ""},
		{"contract file with a header", map[string]string{"control-1.csv": "value\n3\n4\n"}, Config{Column: "value"},
			[]Metric{{"control", 4, "control-1.csv"}}, ""},
		{"missing header", map[string]string{"r.csv": "a,b\n1,2\n"}, Config{File: "r.csv", Column: "loss"},
			nil, `r.csv: no column "loss" in the header ("a", "b")`},
		{"only a header", map[string]string{"r.csv": "a,b\n"}, Config{File: "r.csv", Column: "b"},
			nil, "r.csv: no data rows after the header"},
		{"last row too short", map[string]string{"r.csv": "a,b\n1,2\n3\n"}, Config{File: "r.csv", Column: "b"},
			nil, `r.csv: column "b" of the last row is missing: the row has 1 cells`},
		{"index beyond the row", map[string]string{"r.csv": "1,2\n"}, Config{File: "r.csv", Column: "5"},
			nil, "r.csv: column 5 of the last row is missing"},
		{"empty cell in the last row", map[string]string{"r.csv": "a,b\n1,2\n3,\n"}, Config{File: "r.csv", Column: "b"},
			nil, `r.csv: column "b" of the last row is an empty cell`},
		{"header cell is not a value", map[string]string{"r.csv": "a,b\n"}, Config{File: "r.csv", Column: "2"},
			nil, `r.csv: column 2 of the last row "b" is not a number`},
		{"glob picks the newest match", map[string]string{"out/run-2.csv": "2", "out/run-11.csv": "11", "out/other.csv": "0"}, Config{File: "out/run-*.csv"},
			[]Metric{{"value", 11, "out/run-11.csv"}}, ""},
		{"glob matches nothing", map[string]string{"out/run-2.csv": "2"}, Config{File: "res/*.csv"},
			nil, `no file matching "res/*.csv" in the output`},
		{"missing named file", map[string]string{}, Config{File: "results.csv"},
			nil, `no file matching "results.csv" in the output`},
		{"json, every numeric key sorted", map[string]string{"m.json": `{"recall": 0.5, "accuracy": 9e-1, "name": "x", "nested": {"a": 1}, "ok": true, "none": null, "list": [1], "n": -2}`}, Config{File: "m.json"},
			[]Metric{{"accuracy", 0.9, "m.json"}, {"n", -2, "m.json"}, {"recall", 0.5, "m.json"}}, ""},
		{"json, one key", map[string]string{"m.json": `{"a": 1, "b": 2}`}, Config{File: "m.json", Metric: "b"},
			[]Metric{{"b", 2, "m.json"}}, ""},
		{"json, newest by glob", map[string]string{"r/2025-01-02.json": `{"a": 2}`, "r/2025-01-01.json": `{"a": 1}`}, Config{File: "r/*.json"},
			[]Metric{{"a", 2, "r/2025-01-02.json"}}, ""},
		{"json with a byte order mark", map[string]string{"m.json": "\ufeff{\"a\": 1}"}, Config{File: "m.json"},
			[]Metric{{"a", 1, "m.json"}}, ""},
		{"json format forced", map[string]string{"m.out": `{"a": 1}`}, Config{File: "m.out", Format: "json"},
			[]Metric{{"a", 1, "m.out"}}, ""},
		{"json key missing", map[string]string{"m.json": `{"a": 1}`}, Config{File: "m.json", Metric: "b"},
			nil, `m.json: no numeric key "b"`},
		{"json key not a number", map[string]string{"m.json": `{"a": "1"}`}, Config{File: "m.json", Metric: "a"},
			nil, `m.json: no numeric key "a"`},
		{"json without numbers", map[string]string{"m.json": `{"a": "x"}`}, Config{File: "m.json"},
			nil, "m.json: no numeric top-level key"},
		{"json array", map[string]string{"m.json": `[1, 2]`}, Config{File: "m.json"},
			nil, "m.json: not a JSON object"},
		{"json null", map[string]string{"m.json": `null`}, Config{File: "m.json"},
			nil, "m.json: not a JSON object"},
		{"json garbage", map[string]string{"m.json": `{"a": 1,`}, Config{File: "m.json"},
			nil, "m.json: not a JSON object"},
		{"json trailing data", map[string]string{"m.json": `{"a": 1} {"a": 2}`}, Config{File: "m.json"},
			nil, "m.json: not a JSON object"},
		{"json number out of range", map[string]string{"m.json": `{"a": 1e400}`}, Config{File: "m.json"},
			nil, `m.json: key "a": 1e400 is out of range`},
		{"invalid settings", map[string]string{"control-1.csv": "1"}, Config{Column: "0"},
			nil, "invalid detector settings: column:"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			writeFiles(t, dir, tc.files)
			got, err := Extract(dir, tc.c)
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("Extract() = %v, %v; want error containing %q", got, err, tc.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatalf("Extract(): %v", err)
			}
			if !slices.Equal(got, tc.want) {
				t.Errorf("Extract() = %v, want %v", got, tc.want)
			}
		})
	}
}

func TestExtractFileSystem(t *testing.T) {
	tests := []struct {
		name    string
		setup   func(t *testing.T, dir string)
		wantErr string
	}{
		{"missing output folder", func(t *testing.T, dir string) {
			if err := os.Remove(dir); err != nil {
				t.Fatal(err)
			}
		}, "open output folder"},
		{"symlink out of the folder", func(t *testing.T, dir string) {
			outside := filepath.Join(t.TempDir(), "secret")
			writeFiles(t, filepath.Dir(outside), map[string]string{"secret": "s3cr3t"})
			if err := os.Symlink(outside, filepath.Join(dir, "control-1.csv")); err != nil {
				t.Fatal(err)
			}
		}, "control-1.csv:"},
		{"file over the size limit", func(t *testing.T, dir string) {
			writeFiles(t, dir, map[string]string{"control-1.csv": "1"})
			if err := os.Truncate(filepath.Join(dir, "control-1.csv"), MaxFileSize+1); err != nil {
				t.Fatal(err)
			}
		}, "larger than the limit"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			tc.setup(t, dir)
			got, err := Extract(dir, Config{})
			if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
				t.Fatalf("Extract() = %v, %v; want error containing %q", got, err, tc.wantErr)
			}
			if strings.Contains(err.Error(), "s3cr3t") {
				t.Errorf("error leaks the file outside the folder: %v", err)
			}
		})
	}
}

func TestExtractSymlinkInside(t *testing.T) {
	dir := t.TempDir()
	writeFiles(t, dir, map[string]string{"out/latest.csv": "5"})
	if err := os.Symlink("out/latest.csv", filepath.Join(dir, "control-1.csv")); err != nil {
		t.Fatal(err)
	}
	got, err := Extract(dir, Config{})
	if err != nil || !slices.Equal(got, []Metric{{"control", 5, "control-1.csv"}}) {
		t.Fatalf("Extract() = %v, %v", got, err)
	}
}

func TestCompareNames(t *testing.T) {
	ordered := []string{
		"control-.csv",
		"control-01.csv",
		"control-1.csv",
		"control-2.csv",
		"control-9.csv",
		"control-10.csv",
		"control-10a.csv",
		"control-20250301T000000.csv",
		"control-20250301T000001.csv",
		"control-1700000000000000000.csv",
		"control-99999999999999999999999.csv",
		"control-a.csv",
	}
	for i, a := range ordered {
		for j, b := range ordered {
			got := compareNames(a, b)
			if (got < 0) != (i < j) || (got == 0) != (i == j) {
				t.Errorf("compareNames(%q, %q) = %d", a, b, got)
			}
		}
	}
}

func TestExtractBoundsMetrics(t *testing.T) {
	many := map[string]float64{}
	for i := range MaxMetrics + 1 {
		many[fmt.Sprintf("m%03d", i)] = float64(i)
	}
	manyJSON, _ := json.Marshal(many)
	tests := []struct {
		name, body, want string
	}{
		{"a key with a slash", `{"a/b": 1}`, `key "a/b" is not a metric name`},
		{"an empty key", `{"": 1}`, `key "" is not a metric name`},
		{"too many metrics", string(manyJSON), fmt.Sprintf("%d numeric keys; a run may report at most %d", MaxMetrics+1, MaxMetrics)},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := t.TempDir()
			if err := os.WriteFile(filepath.Join(dir, "m.json"), []byte(tt.body), 0o644); err != nil {
				t.Fatal(err)
			}
			_, err := Extract(dir, Config{File: "m.json"})
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("Extract = %v, want an error saying %q", err, tt.want)
			}
		})
	}
}
