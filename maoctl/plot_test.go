package maoctl

import (
	"strings"
	"testing"
)

func TestWriteSparkline(t *testing.T) {
	ramp := make([]float64, 105)
	for i := range ramp {
		ramp[i] = float64(i % 8)
	}
	tests := []struct {
		name   string
		values []float64
		spikes []int
		want   string
	}{
		{name: "empty", want: ""},
		{name: "flat", values: []float64{2, 2, 2}, want: "  ▅▅▅  min 2, max 2\n"},
		{name: "scaled min to max", values: []float64{-1, 0, 1, 2, 3, 4, 5, 6}, want: "  ▁▂▃▄▅▆▇█  min -1, max 6\n"},
		{name: "spikes", values: []float64{1, 1, 9, 1, 0}, spikes: []int{2, 4},
			want: "  ▂▂█▂▁  min 0, max 9\n    ^ ^  ^ spike\n"},
		{name: "the last values only", values: ramp, spikes: []int{0, 104},
			want: "  (the last 100 of 105 values)\n  " + strings.Repeat("▆▇█▁▂▃▄▅", 12) + "▆▇█▁" + "  min 0, max 7\n  " +
				strings.Repeat(" ", 99) + "^  ^ spike\n"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			spikes := make([]bool, len(tc.values))
			for _, i := range tc.spikes {
				spikes[i] = true
			}
			var b strings.Builder
			if err := writeSparkline(&b, tc.values, spikes); err != nil {
				t.Fatal(err)
			}
			if b.String() != tc.want {
				t.Errorf("got\n%q, want\n%q", b.String(), tc.want)
			}
		})
	}
}

func TestNumbers(t *testing.T) {
	tests := []struct {
		got, want string
	}{
		{number(1523), "1523"},
		{number(0.25), "0.25"},
		{number(1e21), "1000000000000000000000"},
		{rounded(3.0333333), "3.03333"},
		{rounded(10351.125), "10351.1"},
		{rounded(0.0012345678), "0.00123457"},
		{rounded(1502), "1502"},
		{rounded(-0.0000001), "-0.0000001"},
		{rounded(0), "0"},
		{scoreComparison(12.14, 3.5, "mad"), "12.1 > 3.5"},
		{scoreComparison(1.2, 3.5, "zscore"), "1.2 <= 3.5"},
		{scoreComparison(-7.1, 6, "gain"), "-7.1% < -6%"},
		{scoreComparison(-1.25, 3, "mad"), "-1.2 >= -3"},
		{scoreComparison(2.5e6, 3.5, "mad"), "2.50e+06 > 3.5"},
	}
	for _, tc := range tests {
		if tc.got != tc.want {
			t.Errorf("got %q, want %q", tc.got, tc.want)
		}
	}
}
