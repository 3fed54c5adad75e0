package detector

import (
	"encoding/binary"
	"encoding/json"
	"math"
	"os"
	"path/filepath"
	"reflect"
	"testing"
)

// extractFile writes data to name in a fresh folder and extracts from it.
// Extract must not panic, and must return finite metrics or an error.
func extractFile(t *testing.T, name string, data []byte, c Config) {
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, name), data, 0o644); err != nil {
		t.Fatal(err)
	}
	ms, err := Extract(dir, c)
	if err != nil {
		if len(ms) != 0 {
			t.Fatalf("metrics %v with error %v", ms, err)
		}
		return
	}
	if len(ms) == 0 {
		t.Fatal("no metrics and no error")
	}
	for _, m := range ms {
		if math.IsNaN(m.Value) || math.IsInf(m.Value, 0) || m.File != name {
			t.Fatalf("bad metric %+v", m)
		}
	}
}

func FuzzExtractCSV(f *testing.F) {
	for _, seed := range []struct {
		data   string
		column string
	}{
		{"42\n", ""},
		{"-1.5e-3,x\n", ""},
		{"\ufeff7", ""},
		{"step,loss\n1,0.5\n2,0.25\n", "loss"},
		{"step,loss\n1,0.5\n2,0.25\n", "2"},
		{"a,b\n1\n", "b"},
		{"a,\"b\"\"c\"\n1,2\n", "b\"c"},
		{"NaN", ""},
		{"Inf,1\n", "1"},
		{"1e999", ""},
		{"0x1p-2", ""},
		{"1_000", ""},
		{"\"unterminated\n", ""},
		{"a\"b,1\n", "2"},
		{"", ""},
		{"\n\n\n", "1"},
		{",,,\n", "3"},
		{"x\x00y", ""},
	} {
		f.Add([]byte(seed.data), seed.column)
	}
	f.Fuzz(func(t *testing.T, data []byte, column string) {
		extractFile(t, "control-1.csv", data, Config{Column: column})
	})
}

func FuzzExtractJSON(f *testing.F) {
	for _, seed := range []struct {
		data   string
		metric string
	}{
		{`{"a": 1, "b": -2.5e3}`, ""},
		{`{"a": 1, "b": 2}`, "b"},
		{`{"a": "1", "b": true, "c": null, "d": [], "e": {}}`, ""},
		{`{"a": 1e400}`, ""},
		{`{"a": -0}`, ""},
		{`{"a": 1, "a": 2}`, "a"},
		{`{"\u0000": 1}`, ""},
		{`[1]`, ""},
		{`null`, ""},
		{`1`, ""},
		{`{"a": 1`, ""},
		{`{} {}`, ""},
		{``, ""},
		{"\ufeff{\"a\": 1}", ""},
	} {
		f.Add([]byte(seed.data), seed.metric)
	}
	f.Fuzz(func(t *testing.T, data []byte, metric string) {
		extractFile(t, "metrics.json", data, Config{File: "metrics.json", Metric: metric})
	})
}

// FuzzScan checks that any series, however extreme, gives verdicts that
// match Check and encode as JSON.
func FuzzScan(f *testing.F) {
	floats := func(vs ...float64) []byte {
		b := make([]byte, 0, 8*len(vs))
		for _, v := range vs {
			b = binary.LittleEndian.AppendUint64(b, math.Float64bits(v))
		}
		return b
	}
	f.Add(floats(1, 2, 3, 4, 5, 6, 100), uint8(0))
	f.Add(floats(5, 5, 5, 5, 5, 5, 5, 50), uint8(1))
	f.Add(floats(0, 0, 0, 0, 0, 0, 1e-300), uint8(2))
	f.Add(floats(math.MaxFloat64, -math.MaxFloat64, math.MaxFloat64, 0, 1, 2, 3), uint8(0))
	f.Add(floats(math.NaN(), math.Inf(1), 1, 2, 3, math.Inf(-1), 4, 5), uint8(1))
	f.Add(floats(-1, 1, 0, 5, math.SmallestNonzeroFloat64), uint8(2))
	methods := []string{MethodMAD, MethodZScore, MethodGain}
	f.Fuzz(func(t *testing.T, data []byte, method uint8) {
		values := make([]float64, len(data)/8)
		for i := range values {
			values[i] = math.Float64frombits(binary.LittleEndian.Uint64(data[8*i:]))
		}
		c := Config{Method: methods[int(method)%len(methods)], Window: 5, MinHistory: 3}
		for i, v := range Scan(values, c) {
			if want := Check(values[:i], values[i], c); !reflect.DeepEqual(v, want) {
				t.Fatalf("value %d: Scan %+v, Check %+v", i, v, want)
			}
			if _, err := json.Marshal(v); err != nil {
				t.Fatalf("value %d: %v", i, err)
			}
		}
	})
}
