package maoctl

import (
	"fmt"
	"io"
	"math"
	"strconv"
	"strings"
)

// sparkLevels are the bars of a sparkline, lowest first.
var sparkLevels = []rune("▁▂▃▄▅▆▇█")

// plotWidth is the most values a sparkline shows: the last ones.
const plotWidth = 100

// writeSparkline plots values as one line of bars scaled from their
// minimum to their maximum, followed by the range. When some are spikes, a
// second line puts a ^ under each, so the plot reads without colour. Only
// the last plotWidth values are plotted, as a line above says.
func writeSparkline(w io.Writer, values []float64, spikes []bool) error {
	if len(values) == 0 {
		return nil
	}
	if n := len(values); n > plotWidth {
		if _, err := fmt.Fprintf(w, "  (the last %d of %d values)\n", plotWidth, n); err != nil {
			return err
		}
		values, spikes = values[n-plotWidth:], spikes[n-plotWidth:]
	}
	lo, hi := values[0], values[0]
	for _, v := range values {
		lo, hi = min(lo, v), max(hi, v)
	}
	var bars, marks strings.Builder
	marked := false
	for i, v := range values {
		level := len(sparkLevels) / 2 // a flat series is a flat line mid-height
		if hi > lo {
			level = int(math.Round((v - lo) / (hi - lo) * float64(len(sparkLevels)-1)))
		}
		bars.WriteRune(sparkLevels[level])
		if spikes[i] {
			marks.WriteByte('^')
			marked = true
		} else {
			marks.WriteByte(' ')
		}
	}
	if _, err := fmt.Fprintf(w, "  %s  min %s, max %s\n", bars.String(), number(lo), number(hi)); err != nil {
		return err
	}
	if marked {
		_, err := fmt.Fprintf(w, "  %s  ^ spike\n", marks.String())
		return err
	}
	return nil
}

// number formats a value with the digits it needs, without an exponent:
// "1523", "0.25".
func number(v float64) string {
	return strconv.FormatFloat(v, 'f', -1, 64)
}

// rounded formats a computed value, such as a baseline, to about six
// significant digits: 3.0333333 is "3.03333", 10351.125 is "10351.1".
func rounded(v float64) string {
	if v == 0 || math.IsNaN(v) || math.IsInf(v, 0) {
		return number(v)
	}
	decimals := max(0, 5-int(math.Floor(math.Log10(math.Abs(v)))))
	s := strconv.FormatFloat(v, 'f', decimals, 64)
	if strings.Contains(s, ".") {
		s = strings.TrimRight(strings.TrimRight(s, "0"), ".")
	}
	if s == "-0" {
		s = "0"
	}
	return s
}
