// Package detector owns spike detection on a tool's research output: it
// reads a metric value from a run's output folder (Extract) and decides
// whether that value is a spike against the metric's earlier values (Check,
// or Scan for a whole series offline). Config is the tool spec's
// `detector:` block; Problems validates it.
//
// The package is pure Go and a leaf: it must not import etcd, Docker, git,
// HTTP or any other mao package. toolspec imports it to validate the
// `detector:` block, so it must never import toolspec. It reads only the
// files that Extract is asked for, and keeps no state: the caller stores
// the series of earlier values.
//
// # Where the value comes from
//
// By default the value is the MAO tool contract's: the first cell of the
// newest control-*.csv in the data folder, as the metric "control". A
// Config can name another file or glob (newest match by name; digit runs
// compare as numbers), a CSV column by header name or 1-based index (its
// value in the last row), or a JSON object, which gives one metric per
// numeric top-level key. Values must be finite numbers.
//
// # Methods
//
// Each method compares x with a baseline of the earlier values and spikes
// when the change is larger than the threshold k:
//
//   - mad (default): median m and MAD of the last W values, robust score
//     (x − m)/(1.4826·MAD). Robust to earlier outliers and slow trends.
//   - zscore: mean and sample standard deviation σ of the last W values,
//     score (x − mean)/σ.
//   - gain: the predecessor's rule, kept for its users: the average a of
//     the 2 previous values, change (x − a)/|a|·100 percent. For a > 0
//     this is the predecessor's (x/a − 1)·100; for a < 0 the sign follows
//     x − a, so a positive score always means up. When a = 0 any change is
//     an unbounded gain, so x ≠ 0 is a spike (without a score) and x = 0 is
//     ok; there is no division by zero.
//
// For every method, fewer than min_history earlier values give a
// "warming-up" verdict; direction "up" or "down" lets only changes that way
// spike; and a change smaller than floor (absolute) never spikes. NaN and
// ±Inf among the earlier values are skipped.
//
// # Flat windows
//
// When MAD is 0 (more than half the window is one value) the mad scale
// falls back to 1.2533 times the mean absolute deviation from the median,
// the estimator Iglewicz and Hoaglin recommend for this case; both scale
// factors make the scale estimate σ for normal data. When the window is
// entirely flat (every value equal, so that scale and σ are 0) a change is
// a spike if it is larger than the rounding noise of float64 arithmetic:
// the scale is never taken below 1e-9·max(|x|, |baseline|). So a flat
// series followed by the same value is ok, followed by 5.0000000001 is ok
// (within rounding), and followed by a 10× jump is a spike, at any
// magnitude, because the tolerance is relative and the verdict does not
// depend on the unit of the metric. A flat window gives no score, since
// the deviation count would only measure the tolerance; the reason says
// "which were all B" instead. Use floor to ignore larger changes.
//
// # Rules
//
// Imports from mao: nothing.
// Never links: etcd, Docker, go-git, net/http.
package detector
