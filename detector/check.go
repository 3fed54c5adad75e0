package detector

import (
	"fmt"
	"math"
	"slices"
	"strconv"
)

// Verdict statuses.
const (
	StatusOK        = "ok"
	StatusSpike     = "spike"
	StatusNoData    = "no-data"    // no value: extraction failed
	StatusWarmingUp = "warming-up" // fewer than min_history earlier values
)

// Scale constants.
const (
	// madScale makes 1.4826·MAD estimate the standard deviation of normal data.
	madScale = 1.4826
	// meanADScale makes 1.2533·(mean absolute deviation) estimate it; used when MAD is 0.
	meanADScale = 1.2533
	// relTol is the relative size of a change that is rounding noise, not
	// a change: a value must differ from the baseline by more than
	// threshold·relTol·max(|x|, |baseline|) to be a spike.
	relTol = 1e-9
)

// Verdict is the detector's decision on one value.
type Verdict struct {
	Metric   string   `json:"metric"`
	Status   string   `json:"status"` // "ok", "spike", "no-data", "warming-up"
	Spike    bool     `json:"spike"`
	Value    *float64 `json:"value,omitempty"`
	Baseline *float64 `json:"baseline,omitempty"` // median (mad), mean (zscore), average of the 2 previous (gain)
	Score    *float64 `json:"score,omitempty"`    // robust z (mad), z (zscore), change in percent (gain); omitted when undefined
	// Low and High bound the band a value is judged against: baseline ±
	// threshold·scale (mad, zscore; the scale at this value), baseline ±
	// threshold percent of it (gain). Outside it is a spike unless
	// direction or floor say otherwise. Omitted when undefined or not
	// finite. Plots shade this band.
	Low       *float64 `json:"low,omitempty"`
	High      *float64 `json:"high,omitempty"`
	Threshold float64  `json:"threshold"`
	Method    string   `json:"method"`
	History   int      `json:"history"` // earlier values used
	Reason    string   `json:"reason"`  // the verdict in words
}

// Check judges x against history, the metric's earlier values oldest first
// (x itself not included). It uses the last W finite values of history
// (the last 2 for gain); NaN and ±Inf in history are skipped. Verdict.Metric
// is c's metric name; a caller with several metrics sets it.
//
// An invalid c or a non-finite x gives a no-data verdict that says why.
func Check(history []float64, x float64, c Config) Verdict {
	if err := c.err(); err != nil {
		return NoData(c.WithDefaults().Metric, err, c)
	}
	c = c.WithDefaults()
	window, count := lastFinite(history, c.span(), c.MinHistory)
	var sorted []float64
	if c.Method == MethodMAD {
		sorted = slices.Clone(window)
		slices.Sort(sorted)
	}
	var v Verdict
	v.Reason = string(judge(nil, &v, make([]float64, verdictNums), c, window, sorted, count, x))
	return v
}

// NoData is the verdict for a metric whose value could not be read.
func NoData(metric string, err error, c Config) Verdict {
	c = c.WithDefaults()
	reason := "no value"
	if err != nil {
		reason = err.Error()
	}
	return Verdict{
		Metric:    metric,
		Status:    StatusNoData,
		Threshold: c.Threshold,
		Method:    c.Method,
		Reason:    reason,
	}
}

// lastFinite returns the last span finite values of history, oldest first,
// and the number of finite values, counted up to max(span, need).
func lastFinite(history []float64, span, need int) ([]float64, int) {
	count, start, clean := 0, len(history), true
	for i := len(history) - 1; i >= 0 && count < max(span, need); i-- {
		switch {
		case !isFinite(history[i]):
			clean = clean && count >= span
		case count < span:
			start = i
			fallthrough
		default:
			count++
		}
	}
	if clean {
		return history[start:], count
	}
	window := make([]float64, 0, min(count, span))
	for _, v := range history[start:] {
		if isFinite(v) {
			window = append(window, v)
		}
	}
	return window, count
}

func isFinite(v float64) bool { return !math.IsNaN(v) && !math.IsInf(v, 0) }

// verdictNums is how many numbers a verdict points to.
const verdictNums = 5

// judge fills v with the verdict on x against window, the earlier values
// in order (for mad, sorted holds the same values ascending), when count
// earlier finite values exist, and appends the reason to b. Check and Scan
// share it, so they agree value for value. The value, baseline and score
// that v points to are stored in nums[0:verdictNums]: value, baseline,
// score, low, high.
func judge(b []byte, v *Verdict, nums []float64, c Config, window, sorted []float64, count int, x float64) []byte {
	v.Metric, v.Threshold, v.Method = c.Metric, c.Threshold, c.Method
	if !isFinite(x) {
		v.Status = StatusNoData
		return fmt.Appendf(b, "the value %v is not a finite number", x)
	}
	nums[0] = x
	v.Value = &nums[0]
	if count < c.MinHistory {
		v.Status, v.History = StatusWarmingUp, count
		return fmt.Appendf(b, "only %d earlier values; %d are needed before a verdict", count, c.MinHistory)
	}
	v.History = len(window)
	var baseline, scale float64
	switch c.Method {
	case MethodGain:
		baseline = window[0]/2 + window[1]/2
	case MethodZScore:
		baseline, scale = meanStd(window)
	default:
		baseline, scale = medianScale(sorted)
	}
	if !isFinite(baseline) || !isFinite(scale) {
		v.Status, v.Value = StatusNoData, nil
		return append(b, "the earlier values are too large to compare"...)
	}
	nums[1] = baseline
	v.Baseline = &nums[1]
	dev := x - baseline
	var exceeded, scored bool
	var score float64
	var width float64 // the band's half width; 0: none
	if c.Method == MethodGain {
		exceeded = dev != 0 // from an average of 0, any change is an unbounded gain
		if baseline != 0 {
			score = dev / math.Abs(baseline) * 100
			exceeded, scored = math.Abs(score) > c.Threshold, true
			width = c.Threshold / 100 * math.Abs(baseline)
		}
	} else {
		s := max(scale, relTol*max(math.Abs(x), math.Abs(baseline)))
		if dev != 0 {
			score = dev / s
		}
		exceeded, scored = math.Abs(dev) > c.Threshold*s, scale > 0
		width = c.Threshold * s
	}
	if low, high := baseline-width, baseline+width; width > 0 && isFinite(low) && isFinite(high) {
		nums[3], nums[4] = low, high
		v.Low, v.High = &nums[3], &nums[4]
	}
	if scored && isFinite(score) {
		nums[2] = score
		v.Score = &nums[2]
	}
	b = appendBase(b, c, v.History, x, baseline, dev, score, scale)
	v.Spike = exceeded
	switch {
	case !exceeded:
	case c.Direction == DirectionUp && dev < 0:
		v.Spike = false
		b = append(b, "; not a spike: direction is up"...)
	case c.Direction == DirectionDown && dev > 0:
		v.Spike = false
		b = append(b, "; not a spike: direction is down"...)
	case math.Abs(dev) < c.Floor:
		v.Spike = false
		b = append(b, "; not a spike: the change "...)
		b = appendNum(b, math.Abs(dev))
		b = append(b, " is under the floor "...)
		b = appendNum(b, c.Floor)
	}
	v.Status = StatusOK
	if v.Spike {
		v.Status = StatusSpike
	}
	return b
}

// appendBase appends the main sentence of a verdict's reason.
func appendBase(b []byte, c Config, n int, x, baseline, dev, score, scale float64) []byte {
	b = appendNum(b, x)
	if c.Method == MethodGain {
		if dev == 0 {
			b = append(b, " equals"...)
		} else {
			b = append(b, " is "...)
			if baseline != 0 {
				b = strconv.AppendFloat(b, math.Abs(score), 'f', 1, 64)
				b = append(b, "% "...)
			}
			b = append(b, side(dev)...)
		}
		b = append(b, " the average "...)
		b = appendNum(b, baseline)
		b = append(b, " of the 2 previous values"...)
		if baseline == 0 && dev != 0 {
			b = append(b, ": any change from 0 is an unbounded gain"...)
		}
		b = append(b, " (threshold "...)
		b = strconv.AppendFloat(b, c.Threshold, 'g', -1, 64)
		return append(b, "%)"...)
	}
	if scale == 0 {
		switch {
		case dev == 0:
			b = append(b, " equals"...)
		case math.Abs(dev) <= c.Threshold*relTol*max(math.Abs(x), math.Abs(baseline)):
			b = append(b, " is within rounding of"...)
		default:
			b = append(b, " is "...)
			b = append(b, side(dev)...)
		}
		b = append(b, " the last "...)
		b = strconv.AppendInt(b, int64(n), 10)
		b = append(b, " values, which were all "...)
		return appendNum(b, baseline)
	}
	unit, name := " robust deviations ", " the median "
	if c.Method == MethodZScore {
		unit, name = " standard deviations ", " the mean "
	}
	if dev == 0 {
		b = append(b, " equals"...)
	} else {
		b = append(b, " is "...)
		b = appendScore(b, math.Abs(score))
		b = append(b, unit...)
		b = append(b, side(dev)...)
	}
	b = append(b, name...)
	b = appendNum(b, baseline)
	b = append(b, " of the last "...)
	b = strconv.AppendInt(b, int64(n), 10)
	b = append(b, " values (threshold "...)
	b = strconv.AppendFloat(b, c.Threshold, 'g', -1, 64)
	return append(b, ')')
}

func side(dev float64) string {
	if dev > 0 {
		return "above"
	}
	return "below"
}

// appendNum formats a value with up to 10 significant digits.
func appendNum(b []byte, v float64) []byte {
	return strconv.AppendFloat(b, v, 'g', 10, 64)
}

// appendScore formats a score with one decimal.
func appendScore(b []byte, s float64) []byte {
	if s >= 1e6 {
		return strconv.AppendFloat(b, s, 'e', 2, 64)
	}
	return strconv.AppendFloat(b, s, 'f', 1, 64)
}

// medianScale returns the median of sorted and the robust scale
// 1.4826·MAD; when MAD is 0 (more than half the values equal), the scale
// is 1.2533·(mean absolute deviation from the median) instead, and 0 only
// when every value is equal.
func medianScale(sorted []float64) (median, scale float64) {
	n := len(sorted)
	median = medianOf(sorted)
	if mad := madSorted(sorted, median); mad > 0 {
		return median, madScale * mad
	}
	var sum float64
	for _, v := range sorted {
		sum += math.Abs(v - median)
	}
	return median, meanADScale * sum / float64(n)
}

func medianOf(sorted []float64) float64 {
	n := len(sorted)
	if n%2 == 1 {
		return sorted[n/2]
	}
	return sorted[n/2-1]/2 + sorted[n/2]/2
}

// madSorted returns the median of |v − median| over sorted.
func madSorted(sorted []float64, median float64) float64 {
	n := len(sorted)
	split, _ := slices.BinarySearch(sorted, median)
	if n%2 == 1 {
		return kthDeviation(sorted, median, split, n/2)
	}
	return kthDeviation(sorted, median, split, n/2-1)/2 + kthDeviation(sorted, median, split, n/2)/2
}

// kthDeviation returns the k-th smallest (from 0) of the deviations
// |v − m| of sorted, where split is the first index with sorted[split] ≥ m.
// The deviations below split, read downwards, and from split on, read
// upwards, are two ascending runs a and b, so a binary search over how
// many of the k+1 smallest come from a finds it in O(log n) steps.
func kthDeviation(sorted []float64, m float64, split, k int) float64 {
	a := func(i int) float64 { return m - sorted[split-1-i] }
	b := func(j int) float64 { return sorted[split+j] - m }
	na, nb := split, len(sorted)-split
	lo, hi := max(0, k+1-nb), min(k+1, na)
	for lo < hi { // find the fewest i taken from a with a(i) ≥ b(k−i)
		i := int(uint(lo+hi) >> 1)
		if a(i) < b(k-i) {
			lo = i + 1
		} else {
			hi = i
		}
	}
	i, j := lo, k+1-lo
	dev := math.Inf(-1)
	if i > 0 {
		dev = a(i - 1)
	}
	if j > 0 {
		dev = max(dev, b(j-1))
	}
	return dev
}

// meanStd returns the mean and the sample standard deviation of values,
// in two passes for accuracy; both are exact for equal values.
func meanStd(values []float64) (mean, std float64) {
	if !slices.ContainsFunc(values, func(v float64) bool { return v != values[0] }) {
		return values[0], 0
	}
	n := float64(len(values))
	for _, v := range values {
		mean += v
	}
	mean /= n
	var ss float64
	for _, v := range values {
		d := v - mean
		ss += d * d
	}
	return mean, math.Sqrt(ss / (n - 1))
}
