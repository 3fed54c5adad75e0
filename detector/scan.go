package detector

import (
	"runtime"
	"slices"
	"sync"
)

// Scan judges every value of a series against the values before it, as
// Check would: verdicts[i] equals Check(values[:i], values[i], c). It is
// for offline use over long series: the mad window is kept sorted as it
// slides (two binary searches and one shift per value) and the MAD is
// found by a binary search over it, so n values cost O(n·W) with a small
// constant, not a sort per value. Long series are split over the CPUs.
func Scan(values []float64, c Config) []Verdict {
	verdicts := make([]Verdict, len(values))
	if err := c.err(); err != nil {
		nd := NoData(c.WithDefaults().Metric, err, c)
		for i := range verdicts {
			verdicts[i] = nd
		}
		return verdicts
	}
	c = c.WithDefaults()
	nums := make([]float64, verdictNums*len(values))
	parts := min(runtime.GOMAXPROCS(0), len(values)/scanPart)
	if parts <= 1 {
		scanRange(values, 0, len(values), verdicts, nums, c)
		return verdicts
	}
	var wg sync.WaitGroup
	for p := range parts {
		from, to := p*len(values)/parts, (p+1)*len(values)/parts
		wg.Go(func() { scanRange(values, from, to, verdicts, nums, c) })
	}
	wg.Wait()
	return verdicts
}

// scanPart is the fewest values worth a goroutine of their own.
const scanPart = 1 << 16

// reasonChunk is how many bytes of reasons become one string.
const reasonChunk = 1 << 16

// scanRange fills verdicts[from:to] and their numbers
// nums[verdictNums·from:verdictNums·to].
func scanRange(values []float64, from, to int, verdicts []Verdict, nums []float64, c Config) {
	span := c.span()
	// The finite values before from: the last span of them start the window.
	window, _ := lastFinite(values[:from], span, 0)
	count := countFinite(values[:from])
	finite := make([]float64, 0, len(window)+to-from)
	finite = append(finite, window...)
	var sorted []float64 // mad: the window, ascending
	if c.Method == MethodMAD {
		sorted = make([]float64, len(window), span)
		copy(sorted, window)
		slices.Sort(sorted)
	}
	reasons := make([]byte, 0, reasonChunk+256)
	first := from // the first verdict whose reason is in reasons
	ends := make([]int, 0, 1024)
	flush := func(next int) {
		all := string(reasons)
		start := 0
		for k, end := range ends {
			verdicts[first+k].Reason = all[start:end]
			start = end
		}
		reasons, ends, first = reasons[:0], ends[:0], next
	}
	for i := from; i < to; i++ {
		x := values[i]
		window := finite[max(0, len(finite)-span):]
		reasons = judge(reasons, &verdicts[i], nums[verdictNums*i:verdictNums*(i+1)], c, window, sorted, count, x)
		ends = append(ends, len(reasons))
		if len(reasons) >= reasonChunk {
			flush(i + 1)
		}
		if !isFinite(x) {
			continue
		}
		if c.Method == MethodMAD {
			if len(window) == span {
				replace(sorted, window[0], x)
			} else {
				j, _ := slices.BinarySearch(sorted, x)
				sorted = slices.Insert(sorted, j, x)
			}
		}
		finite = append(finite, x)
		count++
	}
	flush(to)
}

func countFinite(values []float64) int {
	n := 0
	for _, v := range values {
		if isFinite(v) {
			n++
		}
	}
	return n
}

// replace removes old from sorted and inserts x, keeping sorted ascending,
// with one shift of the values between their places.
func replace(sorted []float64, old, x float64) {
	i, _ := slices.BinarySearch(sorted, old)
	j, _ := slices.BinarySearch(sorted, x)
	if j > i {
		copy(sorted[i:j-1], sorted[i+1:j])
		sorted[j-1] = x
	} else {
		copy(sorted[j+1:i+1], sorted[j:i])
		sorted[j] = x
	}
}
