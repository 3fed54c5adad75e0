package detector

import (
	"math"
	"math/rand/v2"
	"reflect"
	"slices"
	"testing"
	"time"
)

// series returns n noisy values with a few NaNs, repeats and outliers.
func series(n int, seed uint64) []float64 {
	r := rand.New(rand.NewPCG(seed, 2))
	out := make([]float64, n)
	for i := range out {
		switch p := r.Float64(); {
		case p < 0.01:
			out[i] = math.NaN()
		case p < 0.02:
			out[i] = 100 * r.NormFloat64()
		case p < 0.1 && i > 0:
			out[i] = out[i-1] // ties
		default:
			out[i] = 50 + r.NormFloat64()
		}
	}
	return out
}

// Scan must give exactly the verdicts Check gives one value at a time,
// including across the parts it splits a long series into.
func TestScanMatchesCheck(t *testing.T) {
	tests := []struct {
		name string
		n    int
		c    Config
	}{
		{"mad, split over goroutines", 2*scanPart + 517, Config{Window: 9, MinHistory: 4}},
		{"mad, default", 3000, Config{}},
		{"mad, even window", 3000, Config{Window: 10, Direction: "down", Floor: 0.5}},
		{"zscore", 3000, Config{Method: "zscore", Window: 7}},
		{"gain", 3000, Config{Method: "gain", Threshold: 6, MinHistory: 5}},
		{"tiny", 4, Config{Window: 3}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			values := series(tc.n, uint64(tc.n))
			got := Scan(values, tc.c)
			if len(got) != len(values) {
				t.Fatalf("%d verdicts for %d values", len(got), len(values))
			}
			for i, x := range values {
				if want := Check(values[:i], x, tc.c); !reflect.DeepEqual(got[i], want) {
					t.Fatalf("value %d (%v):\nScan  %+v\nCheck %+v", i, x, got[i], want)
				}
			}
		})
	}
}

func TestScan(t *testing.T) {
	spikesAt := func(vs []Verdict) []int {
		var at []int
		for i, v := range vs {
			if v.Spike {
				at = append(at, i)
			}
		}
		return at
	}
	withOutlier := noise(200, 10, 1, 11)
	withOutlier[120] = 25
	steps := append(repeat(5, 50), repeat(50, 50)...)
	tests := []struct {
		name   string
		values []float64
		c      Config
		spikes []int
	}{
		{"empty", nil, Config{}, nil},
		{"slow linear trend", linear(0, 0.5, 5000), Config{}, nil},
		{"noise", noise(5000, 10, 1, 12), Config{Threshold: 6}, nil},
		{"one outlier, and normal values after it", withOutlier, Config{Threshold: 5}, []int{120}},
		{"a level shift flags its first values", steps, Config{Window: 10}, []int{50, 51, 52}},
		{"gain on the predecessor's numbers", []float64{100, 102, 130, 131, 132}, Config{Method: "gain", Threshold: 20}, []int{2}},
		{"zscore outlier", withOutlier, Config{Method: "zscore", Threshold: 5}, []int{120}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got := spikesAt(Scan(tc.values, tc.c))
			if !slices.Equal(got, tc.spikes) {
				t.Errorf("spikes at %v, want %v", got, tc.spikes)
			}
		})
	}
}

func TestScanStatuses(t *testing.T) {
	vs := Scan([]float64{1, 2, math.NaN(), 3, 4, 5, 6, 7}, Config{})
	want := []string{"warming-up", "warming-up", "no-data", "warming-up", "warming-up", "warming-up", "ok", "ok"}
	for i, v := range vs {
		if v.Status != want[i] {
			t.Errorf("value %d: status %q, want %q (%s)", i, v.Status, want[i], v.Reason)
		}
	}
	for _, v := range Scan([]float64{1, 2}, Config{Window: 1}) {
		if v.Status != StatusNoData || v.Reason != "invalid detector settings: window: 1 is too small: mad needs at least 3 values" {
			t.Errorf("invalid settings: %+v", v)
		}
	}
}

func TestReplace(t *testing.T) {
	r := rand.New(rand.NewPCG(3, 3))
	window := []float64{3, 1, 4, 1, 5}
	sorted := slices.Sorted(slices.Values(window))
	for range 1000 {
		x := float64(r.IntN(7))
		replace(sorted, window[0], x)
		window = append(window[1:], x)
		if want := slices.Sorted(slices.Values(window)); !slices.Equal(sorted, want) {
			t.Fatalf("sorted %v, want %v", sorted, want)
		}
	}
}

// BenchmarkScan1M checks 1,000,000 values, each against the 100 before it.
// Its physical baseline, timed in the same run, is one sort of the same
// values: the ratio says how many sorts of the series a scan costs.
func BenchmarkScan1M(b *testing.B) {
	values := noise(1_000_000, 10, 1, 13)
	c := Config{Method: MethodMAD, Window: 100}
	start := time.Now()
	slices.Sort(slices.Clone(values))
	sortTime := time.Since(start)
	n := 0
	start = time.Now()
	for b.Loop() {
		Scan(values, c)
		n++
	}
	per := time.Since(start) / time.Duration(n)
	b.ReportMetric(float64(per)/float64(sortTime), "x-sort")
	b.Logf("scan of 1,000,000 values (mad, W=100): %s; one sort of them: %s; ratio %.1f; target <= 1s",
		per.Round(time.Millisecond), sortTime.Round(time.Millisecond), float64(per)/float64(sortTime))
}

// BenchmarkCheckW100 is the detector's cost per run, with W = 100. Its
// baseline, timed in the same run, is a copy and sort of the 100 values.
func BenchmarkCheckW100(b *testing.B) {
	history := noise(100, 10, 1, 14)
	c := Config{Method: MethodMAD, Window: 100}
	const sorts = 100000
	start := time.Now()
	for range sorts {
		slices.Sort(slices.Clone(history))
	}
	sortTime := time.Since(start) / sorts
	start = time.Now()
	for b.Loop() {
		Check(history, 12, c)
	}
	per := time.Since(start) / time.Duration(b.N)
	b.ReportMetric(float64(per)/float64(sortTime), "x-sort")
	b.Logf("one check against 100 values: %s; a copy and sort of them: %s; ratio %.1f; target <= 1ms",
		per, sortTime, float64(per)/float64(sortTime))
}
