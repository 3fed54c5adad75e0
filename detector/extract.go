package detector

import (
	"bufio"
	"bytes"
	"encoding/csv"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"math"
	"os"
	"regexp"
	"slices"
	"strconv"
	"strings"
)

// MaxFileSize is the largest metric file Extract reads.
const MaxFileSize = 64 << 20

// MaxMetrics bounds the metrics of one run: each is a series, a verdict in
// the run record and a notification state.
const MaxMetrics = 100

// metricNameRe is what a metric name may be: it is one segment of the
// series' etcd key, so it has no '/', and it is shown in tables.
var metricNameRe = regexp.MustCompile(`^[^/\x00-\x1f\x7f]{1,128}$`)

// Metric is one value read from a run's output.
type Metric struct {
	Name  string
	Value float64
	File  string // slash-separated path inside the data folder
}

// Extract reads the metric values of one run from dataDir, the tool's data
// folder after the run, as c says. A CSV file gives one metric; a JSON file
// gives one per numeric top-level key, sorted by name. Every value is a
// finite number; anything else is an error that names the file and says
// why.
//
// Files are read through an os.Root, so a symbolic link cannot lead outside
// dataDir, and only regular files of at most MaxFileSize bytes are opened.
func Extract(dataDir string, c Config) ([]Metric, error) {
	if err := c.err(); err != nil {
		return nil, err
	}
	c = c.WithDefaults()
	root, err := os.OpenRoot(dataDir)
	if err != nil {
		return nil, fmt.Errorf("open output folder: %w", err)
	}
	defer root.Close()
	fsys := root.FS()
	name, err := newest(fsys, c.File)
	if err != nil {
		return nil, err
	}
	f, err := fsys.Open(name)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", name, err)
	}
	defer f.Close()
	if c.Format == FormatJSON {
		return readJSON(f, name, c.Metric)
	}
	v, err := readCSV(f, name, strings.TrimSpace(c.Column))
	if err != nil {
		return nil, err
	}
	if !metricNameRe.MatchString(c.Metric) {
		return nil, fmt.Errorf("%s: %q is not a metric name (1 to 128 characters, no '/' or control characters): set the detector's metric", name, c.Metric)
	}
	return []Metric{{Name: c.Metric, Value: v, File: name}}, nil
}

// newest returns the last regular file matching pattern ("" for the
// contract files) in name order. Directories are skipped; a newest match
// that is anything else but a regular file is an error.
func newest(fsys fs.FS, pattern string) (string, error) {
	glob := pattern
	if glob == "" {
		glob = ContractPattern
	}
	names, err := fs.Glob(fsys, glob)
	if err != nil {
		return "", fmt.Errorf("find %s: %w", glob, err)
	}
	slices.SortFunc(names, compareNames)
	for _, name := range slices.Backward(names) {
		info, err := fs.Stat(fsys, name)
		if err != nil {
			return "", fmt.Errorf("%s: %w", name, err)
		}
		switch {
		case info.IsDir():
			continue
		case !info.Mode().IsRegular():
			return "", fmt.Errorf("%s: not a regular file", name)
		case info.Size() > MaxFileSize:
			return "", fmt.Errorf("%s: %d bytes is larger than the limit of %d", name, info.Size(), MaxFileSize)
		}
		return name, nil
	}
	if pattern == "" {
		return "", fmt.Errorf("no %s in the output", ContractPattern)
	}
	return "", fmt.Errorf("no file matching %q in the output", pattern)
}

// compareNames orders file names naturally: runs of digits compare by
// their numeric value, so control-9.csv comes before control-10.csv. For
// names whose numbers have the same width (timestamps, zero-padded
// counters) this is plain byte order.
func compareNames(a, b string) int {
	i, j := 0, 0
	for i < len(a) && j < len(b) {
		if isDigit(a[i]) && isDigit(b[j]) {
			ei, ej := digitsEnd(a, i), digitsEnd(b, j)
			na := strings.TrimLeft(a[i:ei], "0")
			nb := strings.TrimLeft(b[j:ej], "0")
			if c := len(na) - len(nb); c != 0 {
				return c
			}
			if c := strings.Compare(na, nb); c != 0 {
				return c
			}
			i, j = ei, ej
			continue
		}
		if a[i] != b[j] {
			return int(a[i]) - int(b[j])
		}
		i++
		j++
	}
	if c := (len(a) - i) - (len(b) - j); c != 0 {
		return c
	}
	return strings.Compare(a, b) // equal numbers with different zero padding
}

func isDigit(b byte) bool { return '0' <= b && b <= '9' }

func digitsEnd(s string, i int) int {
	for i < len(s) && isDigit(s[i]) {
		i++
	}
	return i
}

var utf8BOM = []byte{0xEF, 0xBB, 0xBF}

// readCSV returns the first cell of the first row when col is "", else the
// cell in column col (a header name or a 1-based index) of the last row.
func readCSV(r io.Reader, name, col string) (float64, error) {
	cr := newCSVReader(io.LimitReader(r, MaxFileSize))
	first, err := cr.Read()
	if errors.Is(err, io.EOF) {
		return 0, fmt.Errorf("%s: the file is empty", name)
	}
	if err != nil {
		return 0, fmt.Errorf("%s: %w", name, err)
	}
	if col == "" {
		return parseCell(name, "first cell", first[0])
	}
	index, byIndex := columnIndex(col)
	what := fmt.Sprintf("column %d of the last row", index+1)
	if !byIndex {
		what = fmt.Sprintf("column %q of the last row", col)
		index = slices.IndexFunc(first, func(h string) bool { return strings.TrimSpace(h) == col })
		if index < 0 {
			return 0, fmt.Errorf("%s: no column %q in the header %s", name, col, describeHeader(first))
		}
	}
	last := slices.Clone(first)
	rows := 1
	for {
		rec, err := cr.Read()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return 0, fmt.Errorf("%s: %w", name, err)
		}
		last, rows = rec, rows+1
	}
	if !byIndex && rows == 1 {
		return 0, fmt.Errorf("%s: no data rows after the header", name)
	}
	if index >= len(last) {
		return 0, fmt.Errorf("%s: %s is missing: the row has %d cells", name, what, len(last))
	}
	return parseCell(name, what, last[index])
}

// newCSVReader reads comma-separated records of any length from r, past a
// UTF-8 byte order mark, with leading spaces trimmed.
func newCSVReader(r io.Reader) *csv.Reader {
	br := bufio.NewReader(r)
	if b, _ := br.Peek(len(utf8BOM)); bytes.Equal(b, utf8BOM) {
		_, _ = br.Discard(len(utf8BOM))
	}
	cr := csv.NewReader(br)
	cr.FieldsPerRecord = -1
	cr.TrimLeadingSpace = true
	return cr
}

// columnIndex returns the 0-based index of a numeric column.
func columnIndex(col string) (int, bool) {
	n, err := strconv.Atoi(col)
	if err != nil || n < 1 {
		return 0, false
	}
	return n - 1, true
}

// describeHeader lists up to 10 header names for an error message.
func describeHeader(header []string) string {
	const most = 10
	names := make([]string, 0, most+1)
	for _, h := range header[:min(len(header), most)] {
		names = append(names, strconv.Quote(strings.TrimSpace(h)))
	}
	if len(header) > most {
		names = append(names, fmt.Sprintf("and %d more", len(header)-most))
	}
	return "(" + strings.Join(names, ", ") + ")"
}

// parseCell parses one CSV cell as a finite number.
func parseCell(name, what, cell string) (float64, error) {
	s := strings.TrimSpace(cell)
	if s == "" {
		return 0, fmt.Errorf("%s: %s is an empty cell", name, what)
	}
	v, err := strconv.ParseFloat(s, 64)
	switch {
	case errors.Is(err, strconv.ErrRange):
		return 0, fmt.Errorf("%s: %s %q is out of range", name, what, s)
	case err != nil:
		return 0, fmt.Errorf("%s: %s %q is not a number", name, what, s)
	case math.IsNaN(v) || math.IsInf(v, 0):
		return 0, fmt.Errorf("%s: %s %q is not a finite number", name, what, s)
	}
	return v, nil
}

// readJSON reads a JSON object and returns its numeric top-level keys as
// metrics, or only key when it is not "".
func readJSON(r io.Reader, name, key string) ([]Metric, error) {
	data, err := io.ReadAll(io.LimitReader(r, MaxFileSize))
	if err != nil {
		return nil, fmt.Errorf("%s: %w", name, err)
	}
	var obj map[string]json.RawMessage
	if err := json.Unmarshal(bytes.TrimPrefix(data, utf8BOM), &obj); err != nil {
		return nil, fmt.Errorf("%s: not a JSON object: %w", name, err)
	}
	if obj == nil {
		return nil, fmt.Errorf("%s: not a JSON object: null", name)
	}
	var ms []Metric
	for k, raw := range obj {
		if key != "" && k != key {
			continue
		}
		if len(raw) == 0 || (raw[0] != '-' && !isDigit(raw[0])) {
			continue // a string, object, array, bool or null
		}
		v, err := strconv.ParseFloat(string(raw), 64)
		if err != nil {
			return nil, fmt.Errorf("%s: key %q: %s is out of range", name, k, raw)
		}
		if !metricNameRe.MatchString(k) {
			return nil, fmt.Errorf("%s: key %q is not a metric name (1 to 128 characters, no '/' or control characters)", name, k)
		}
		ms = append(ms, Metric{Name: k, Value: v, File: name})
	}
	if len(ms) > MaxMetrics {
		return nil, fmt.Errorf("%s: %d numeric keys; a run may report at most %d metrics", name, len(ms), MaxMetrics)
	}
	if len(ms) == 0 {
		if key != "" {
			return nil, fmt.Errorf("%s: no numeric key %q", name, key)
		}
		return nil, fmt.Errorf("%s: no numeric top-level key", name)
	}
	slices.SortFunc(ms, func(a, b Metric) int { return strings.Compare(a.Name, b.Name) })
	return ms, nil
}
