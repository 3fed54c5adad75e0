package api

import (
	"io"

	"github.com/mao-research/mao/detector"
)

// DetectorConfig is a tool's spike detector settings, the `detector:`
// block of its spec (see detector.Config).
type DetectorConfig = detector.Config

// Verdict statuses and detector methods.
const (
	VerdictOK        = detector.StatusOK
	VerdictSpike     = detector.StatusSpike
	VerdictNoData    = detector.StatusNoData
	VerdictWarmingUp = detector.StatusWarmingUp

	MethodMAD    = detector.MethodMAD
	MethodZScore = detector.MethodZScore
	MethodGain   = detector.MethodGain
)

// ScanSeries judges every value of a series against the values before it,
// as the orchestrator judges each run's value: verdicts[i] is the verdict
// on values[i]. An invalid c gives no-data verdicts; check
// c.Problems() first.
func ScanSeries(values []float64, c DetectorConfig) []Verdict { return detector.Scan(values, c) }

// ReadColumn reads one column of a CSV file as numbers, top to bottom; see
// detector.ReadColumn.
func ReadColumn(r io.Reader, column string) ([]float64, error) { return detector.ReadColumn(r, column) }
