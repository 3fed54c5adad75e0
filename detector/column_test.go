package detector

import (
	"reflect"
	"strings"
	"testing"
)

func TestReadColumn(t *testing.T) {
	tests := []struct {
		name    string
		csv     string
		column  string
		want    []float64
		wantErr string
	}{
		{name: "bare numbers", csv: "5\n5.5\n-1e3\n", want: []float64{5, 5.5, -1000}},
		{name: "header skipped", csv: "control\n1\n2\n", want: []float64{1, 2}},
		{name: "by name", csv: "day,control\nmon,1\ntue, 2\n", column: "control", want: []float64{1, 2}},
		{name: "by index", csv: "day,control\nmon,1\ntue,2\n", column: "2", want: []float64{1, 2}},
		{name: "first column of several", csv: "1,x\n2,y\n", want: []float64{1, 2}},
		{name: "byte order mark and blank lines", csv: "\ufeffcontrol\n\n1\n\n2\n", want: []float64{1, 2}},
		{name: "crlf", csv: "a,b\r\n1,2\r\n3,4\r\n", column: "b", want: []float64{2, 4}},
		{name: "bad cell", csv: "control\n1\n2\nn/a\n4\n", wantErr: `line 4: column 1: "n/a" is not a finite number`},
		{name: "bad cell after blank lines", csv: "a,b\n\n1,2\n\n3,x\n", column: "b", wantErr: `line 5: column "b": "x" is not a finite number`},
		{name: "not finite", csv: "1\nNaN\n", wantErr: `line 2: column 1: "NaN" is not a finite number`},
		{name: "out of range", csv: "1\n1e999\n", wantErr: `line 2: column 1: "1e999" is not a finite number`},
		{name: "empty cell", csv: "a,b\n1,\n", column: "b", wantErr: `line 2: column "b" is an empty cell`},
		{name: "short row", csv: "1,2\n3\n", column: "2", wantErr: "line 2: no column 2: the row has 1 cell"},
		{name: "unknown name", csv: "a,b\n1,2\n", column: "c", wantErr: `line 1: no column "c" in the header`},
		{name: "index 0", csv: "1\n", column: "0", wantErr: "column 0: column indexes start at 1"},
		{name: "empty", csv: "", wantErr: "no values in column 1"},
		{name: "header only", csv: "a,b\n", column: "b", wantErr: `no values in column "b"`},
		{name: "broken quotes", csv: "1\n\"2\n", wantErr: "line 2"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, err := ReadColumn(strings.NewReader(tc.csv), tc.column)
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("error %v, want one containing %q", err, tc.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(got, tc.want) {
				t.Errorf("got %v, want %v", got, tc.want)
			}
		})
	}
}
