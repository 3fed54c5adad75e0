package detector

import (
	"encoding/json"
	"errors"
	"math"
	"math/rand/v2"
	"slices"
	"strings"
	"testing"
)

// noise returns n values around mean with standard deviation sd, the same
// on every run.
func noise(n int, mean, sd float64, seed uint64) []float64 {
	r := rand.New(rand.NewPCG(seed, 1))
	out := make([]float64, n)
	for i := range out {
		out[i] = mean + sd*r.NormFloat64()
	}
	return out
}

func repeat(v float64, n int) []float64 { return slices.Repeat([]float64{v}, n) }

func linear(from, step float64, n int) []float64 {
	out := make([]float64, n)
	for i := range out {
		out[i] = from + step*float64(i)
	}
	return out
}

func TestCheck(t *testing.T) {
	nan := math.NaN()
	gain := func(k float64) Config { return Config{Method: "gain", Threshold: k} }
	tests := []struct {
		name    string
		history []float64
		x       float64
		c       Config
		status  string
		score   float64 // checked when hasScore
		reason  string  // a substring of the reason
	}{
		// The predecessor's rule and numbers.
		{"gain 130 after 100, 102 at 20%", []float64{100, 102}, 130, gain(20), "spike", 28.71287, "130 is 28.7% above the average 101 of the 2 previous values (threshold 20%)"},
		{"gain 104 after 100, 102 at 20%", []float64{100, 102}, 104, gain(20), "ok", 2.97030, "104 is 3.0% above the average 101"},
		{"gain 108 after 100, 102 at 6%", []float64{100, 102}, 108, gain(6), "spike", 6.93069, "(threshold 6%)"},
		{"gain 106 after 100, 102 at 6%", []float64{100, 102}, 106, gain(6), "ok", 4.95050, ""},
		{"gain drop 80 after 100, 102 at 6%", []float64{100, 102}, 80, gain(6), "spike", -20.79208, "80 is 20.8% below the average 101"},
		{"gain default threshold is 20", []float64{100, 102}, 125, Config{Method: "gain"}, "spike", 23.76238, "(threshold 20%)"},
		{"gain uses only the 2 previous", []float64{1, 1000, 100, 102}, 104, gain(6), "ok", 2.97030, ""},
		{"gain needs 2 earlier values", []float64{100}, 130, gain(20), "warming-up", 0, "only 1 earlier values; 2 are needed"},
		{"gain waits for min_history", []float64{100, 102, 101}, 500, Config{Method: "gain", MinHistory: 4}, "warming-up", 0, "only 3 earlier values; 4 are needed"},
		{"gain on negative values", []float64{-100, -100}, -130, gain(20), "spike", -30, "-130 is 30.0% below the average -100"},
		{"gain from zero to zero", []float64{0, 0}, 0, gain(20), "ok", math.NaN(), "0 equals the average 0"},
		{"gain from an average of zero", []float64{-1, 1}, 5, gain(20), "spike", math.NaN(), "5 is above the average 0 of the 2 previous values: any change from 0 is an unbounded gain"},
		{"gain from zero under the floor", []float64{0, 0}, 0.5, Config{Method: "gain", Floor: 1}, "ok", math.NaN(), "under the floor 1"},

		// mad.
		{"flat series, same value", repeat(5, 30), 5, Config{}, "ok", math.NaN(), "5 equals the last 30 values, which were all 5"},
		{"flat series, 10x jump", repeat(5, 30), 50, Config{}, "spike", math.NaN(), "50 is above the last 30 values, which were all 5"},
		{"flat series, 10x drop", repeat(5, 30), 0.5, Config{}, "spike", math.NaN(), "0.5 is below the last 30 values"},
		{"flat series, rounding noise", repeat(5, 30), 5.0000000001, Config{}, "ok", math.NaN(), "is within rounding of the last 30 values"},
		{"flat series of tiny values, 10x jump", repeat(1e-12, 30), 1e-11, Config{}, "spike", math.NaN(), ""},
		{"flat series of huge values, a step under the tolerance", repeat(1e12, 30), 1e12 + 1, Config{}, "ok", math.NaN(), "within rounding"},
		{"flat series of huge values, a step over the tolerance", repeat(1e12, 30), 1e12 + 1e4, Config{}, "spike", math.NaN(), ""},
		{"flat zeros, zero", repeat(0, 30), 0, Config{}, "ok", math.NaN(), "0 equals the last 30 values, which were all 0"},
		{"flat zeros, anything else", repeat(0, 30), -1e-300, Config{}, "spike", math.NaN(), "below"},
		{"slow linear trend", linear(100, 1, 30), 130, Config{}, "ok", 1.39395, "130 is 1.4 robust deviations above the median 114.5 of the last 30 values (threshold 3.5)"},
		{"outlier among noise", noise(30, 10, 1, 1), 20, Config{}, "spike", 0, "robust deviations above the median"},
		{"normal value among noise", noise(30, 10, 1, 1), 10.5, Config{}, "ok", 0, ""},
		{"normal value after an outlier", append(noise(29, 10, 1, 2), 50), 10.5, Config{}, "ok", 0, ""},
		{"negative series, drop", noise(30, -100, 1, 3), -150, Config{}, "spike", 0, "below the median -"},
		{"negative series, normal", noise(30, -100, 1, 3), -100.5, Config{}, "ok", 0, ""},
		{"mostly zeros, a one", []float64{0, 0, 0, 1, 0, 0, 0, 0, 0, 0}, 1, Config{}, "spike", 7.97893, "robust deviations above the median 0"},
		{"counts that often step by one", []float64{10, 11, 10, 11, 10, 10, 11, 10, 10, 11}, 11, Config{}, "ok", 1.99473, "11 is 2.0 robust deviations above the median 10"},
		{"counts that often step by one, a jump", []float64{10, 11, 10, 11, 10, 10, 11, 10, 10, 11}, 13, Config{}, "spike", 5.98420, ""},
		{"window drops old values", append(repeat(1000, 20), noise(30, 10, 1, 4)...), 1000, Config{Window: 30}, "spike", 0, "of the last 30 values"},
		{"short history uses what there is", noise(12, 10, 1, 5), 10, Config{}, "ok", 0, "of the last 12 values"},
		{"NaN in history is skipped", []float64{5, 5, nan, 5, math.Inf(1), 5, 5}, 5, Config{}, "ok", math.NaN(), "5 equals the last 5 values"},
		{"warming up", []float64{1, 2, 3, 4}, 100, Config{}, "warming-up", 0, "only 4 earlier values; 5 are needed before a verdict"},
		{"warming up counts finite values", []float64{1, 2, nan, 3, 4}, 100, Config{}, "warming-up", 0, "only 4 earlier values"},
		{"lower min_history", []float64{1, 2, 3}, 100, Config{MinHistory: 3}, "spike", 0, "of the last 3 values"},
		{"NaN value", noise(30, 10, 1, 6), nan, Config{}, "no-data", 0, "the value NaN is not a finite number"},
		{"infinite value", noise(30, 10, 1, 6), math.Inf(-1), Config{}, "no-data", 0, "the value -Inf is not a finite number"},
		{"invalid settings", noise(30, 10, 1, 6), 10, Config{Method: "median"}, "no-data", 0, `invalid detector settings: method: "median" is not`},
		{"values too large to compare", []float64{-1e308, 1e308, -1e308, 1e308, -1e308}, 0, Config{}, "no-data", 0, "too large to compare"},

		// Direction and floor.
		{"direction up, jump", noise(30, 10, 1, 7), 20, Config{Direction: "up"}, "spike", 0, ""},
		{"direction up, drop", noise(30, 10, 1, 7), 0, Config{Direction: "up"}, "ok", 0, "(threshold 3.5); not a spike: direction is up"},
		{"direction down, drop", noise(30, 10, 1, 7), 0, Config{Direction: "down"}, "spike", 0, ""},
		{"direction down, jump", noise(30, 10, 1, 7), 20, Config{Direction: "down"}, "ok", 0, "; not a spike: direction is down"},
		{"direction with gain", []float64{100, 102}, 50, Config{Method: "gain", Direction: "up"}, "ok", -50.49505, "direction is up"},
		{"floor hides a small jump", repeat(5, 30), 5.5, Config{Floor: 1}, "ok", math.NaN(), "; not a spike: the change 0.5 is under the floor 1"},
		{"floor lets a large jump through", repeat(5, 30), 7, Config{Floor: 1}, "spike", math.NaN(), ""},
		{"change equal to the floor", repeat(5, 30), 6, Config{Floor: 1}, "spike", math.NaN(), ""},

		// zscore.
		{"zscore outlier", noise(30, 10, 1, 8), 20, Config{Method: "zscore"}, "spike", 0, "standard deviations above the mean"},
		{"zscore normal", noise(30, 10, 1, 8), 11, Config{Method: "zscore"}, "ok", 0, "(threshold 3)"},
		{"zscore exact", []float64{1, 2, 3, 4, 5}, 9, Config{Method: "zscore"}, "spike", 3.79473, "9 is 3.8 standard deviations above the mean 3 of the last 5 values (threshold 3)"},
		{"zscore exact, higher threshold", []float64{1, 2, 3, 4, 5}, 9, Config{Method: "zscore", Threshold: 4}, "ok", 3.79473, ""},
		{"zscore flat, same", repeat(2, 10), 2, Config{Method: "zscore"}, "ok", math.NaN(), "2 equals the last 10 values"},
		{"zscore flat, jump", repeat(2, 10), 20, Config{Method: "zscore"}, "spike", math.NaN(), "20 is above the last 10 values, which were all 2"},
		{"zscore is pulled by an earlier outlier", append(noise(29, 10, 1, 9), 100), 14, Config{Method: "zscore"}, "ok", 0, ""},
		{"mad is not", append(noise(29, 10, 1, 9), 100), 14, Config{}, "spike", 0, ""},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			v := Check(tc.history, tc.x, tc.c)
			if v.Status != tc.status || v.Spike != (tc.status == StatusSpike) {
				t.Fatalf("status %q spike %v, want %q: %s", v.Status, v.Spike, tc.status, v.Reason)
			}
			if !strings.Contains(v.Reason, tc.reason) {
				t.Errorf("reason %q does not contain %q", v.Reason, tc.reason)
			}
			switch {
			case tc.status == StatusNoData || tc.status == StatusWarmingUp:
				if v.Baseline != nil || v.Score != nil {
					t.Errorf("baseline %v, score %v; want none", v.Baseline, v.Score)
				}
			case math.IsNaN(tc.score):
				if v.Score != nil {
					t.Errorf("score = %v, want none", *v.Score)
				}
			case v.Score == nil:
				t.Errorf("no score")
			case tc.score != 0 && math.Abs(*v.Score-tc.score) > 1e-4:
				t.Errorf("score = %v, want %v", *v.Score, tc.score)
			}
			if (v.Value == nil) != (tc.status == StatusNoData) {
				t.Errorf("value = %v", v.Value)
			}
			d := tc.c.WithDefaults()
			if v.Method != d.Method || v.Threshold != d.Threshold || v.Metric != d.Metric {
				t.Errorf("method %q threshold %v metric %q", v.Method, v.Threshold, v.Metric)
			}
			if _, err := json.Marshal(v); err != nil {
				t.Errorf("marshal: %v", err)
			}
		})
	}
}

func TestCheckDoesNotModifyHistory(t *testing.T) {
	history := []float64{3, 1, math.NaN(), 2, 5, 4}
	before := slices.Clone(history)
	Check(history, 3, Config{Window: 4, MinHistory: 3})
	Check(history, 3, Config{Window: 3, MinHistory: 3})
	if !slices.EqualFunc(history, before, func(a, b float64) bool { return a == b || (math.IsNaN(a) && math.IsNaN(b)) }) {
		t.Errorf("history changed: %v", history)
	}
}

func TestVerdictJSON(t *testing.T) {
	tests := []struct {
		name string
		v    Verdict
		want string
	}{
		{"spike", Check([]float64{100, 102}, 130, Config{Method: "gain"}),
			`{"metric":"control","status":"spike","spike":true,"value":130,"baseline":101,"score":28.71287128712871,"low":80.8,"high":121.2,"threshold":20,"method":"gain","history":2,"reason":"130 is 28.7% above the average 101 of the 2 previous values (threshold 20%)"}`},
		{"flat window has no score", Check(repeat(1, 5), 1, Config{}),
			`{"metric":"control","status":"ok","spike":false,"value":1,"baseline":1,"low":0.9999999965,"high":1.0000000035,"threshold":3.5,"method":"mad","history":5,"reason":"1 equals the last 5 values, which were all 1"}`},
		{"warming up", Check(nil, 1, Config{Metric: "loss"}),
			`{"metric":"loss","status":"warming-up","spike":false,"value":1,"threshold":3.5,"method":"mad","history":0,"reason":"only 0 earlier values; 5 are needed before a verdict"}`},
		{"no data", NoData("accuracy", errors.New("m.json: no numeric key \"accuracy\""), Config{Method: "zscore"}),
			`{"metric":"accuracy","status":"no-data","spike":false,"threshold":3,"method":"zscore","history":0,"reason":"m.json: no numeric key \"accuracy\""}`},
		{"no data without an error", NoData("control", nil, Config{}),
			`{"metric":"control","status":"no-data","spike":false,"threshold":3.5,"method":"mad","history":0,"reason":"no value"}`},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, err := json.Marshal(tc.v)
			if err != nil {
				t.Fatal(err)
			}
			if string(got) != tc.want {
				t.Errorf("got  %s\nwant %s", got, tc.want)
			}
		})
	}
}

// An extraction error becomes a no-data verdict that says what went wrong.
func TestExtractErrorToNoData(t *testing.T) {
	dir := t.TempDir()
	writeFiles(t, dir, map[string]string{"control-7.csv": "\n,\n"})
	_, err := Extract(dir, Config{})
	if err == nil {
		t.Fatal("Extract succeeded on an empty cell")
	}
	v := NoData(ContractMetric, err, Config{})
	if v.Status != StatusNoData || v.Spike || v.Value != nil || v.Reason != "control-7.csv: first cell is an empty cell" {
		t.Errorf("verdict = %+v", v)
	}
}

func TestMADSorted(t *testing.T) {
	tests := []struct {
		values []float64
		want   float64
	}{
		{[]float64{1}, 0},
		{[]float64{1, 3}, 1},
		{[]float64{1, 2, 3}, 1},
		{[]float64{1, 1, 2, 2, 4, 6, 9}, 1},
		{[]float64{1, 2, 3, 4}, 1},
		{[]float64{-5, 0, 0, 0, 7}, 0},
		{[]float64{0, 0, 10, 10}, 5},
		{[]float64{1, 2, 3, 100, 1000, 1001}, 50},
	}
	for _, tc := range tests {
		sorted := slices.Sorted(slices.Values(tc.values))
		if got := madSorted(sorted, medianOf(sorted)); got != tc.want {
			t.Errorf("MAD of %v = %v, want %v", tc.values, got, tc.want)
		}
	}
	// Against the definition, on random windows with ties.
	r := rand.New(rand.NewPCG(7, 7))
	for range 2000 {
		n := 1 + r.IntN(40)
		values := make([]float64, n)
		for i := range values {
			values[i] = float64(r.IntN(9)) - 4
		}
		sorted := slices.Sorted(slices.Values(values))
		m := medianOf(sorted)
		devs := make([]float64, n)
		for i, v := range sorted {
			devs[i] = math.Abs(v - m)
		}
		slices.Sort(devs)
		if got, want := madSorted(sorted, m), medianOf(devs); got != want {
			t.Fatalf("MAD of %v = %v, want %v", values, got, want)
		}
	}
}
