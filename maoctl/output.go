package maoctl

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"slices"
	"strings"
	"text/tabwriter"
	"time"
	"unicode/utf8"

	"github.com/mao-research/mao/api"
)

// writeJSON prints v indented, without HTML escaping.
func writeJSON(w io.Writer, v any) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	enc.SetEscapeHTML(false)
	return enc.Encode(v)
}

// table writes aligned columns, as a tabwriter with a padding of two
// spaces would, without the padding a blank last cell leaves.
type table struct {
	w    io.Writer
	rows [][]string
}

func newTable(w io.Writer, header ...string) *table {
	t := &table{w: w}
	if len(header) > 0 {
		t.row(header...)
	}
	return t
}

func (t *table) row(cells ...string) {
	row := make([]string, len(cells))
	for i, c := range cells {
		row[i] = cell(c)
	}
	t.rows = append(t.rows, row)
}

// rawRow writes cells as they are, for cells that are already one line
// and may be blank on purpose.
func (t *table) rawRow(cells ...string) {
	t.rows = append(t.rows, slices.Clone(cells))
}

// flush writes the rows so far. Rows of as many cells as each other (a
// table's) are aligned here, a list of thousands at once; others go
// through a tabwriter, whose columns end where a shorter row comes.
func (t *table) flush() error {
	rows := t.rows
	t.rows = nil
	var buf bytes.Buffer
	if slices.ContainsFunc(rows, func(r []string) bool { return len(r) != len(rows[0]) }) {
		tw := tabwriter.NewWriter(&buf, 0, 0, 2, ' ', 0)
		for _, r := range rows {
			fmt.Fprintln(tw, strings.Join(r, "\t"))
		}
		if err := tw.Flush(); err != nil {
			return err
		}
	} else if len(rows) > 0 {
		widths := make([]int, len(rows[0]))
		for _, r := range rows {
			for i, c := range r {
				widths[i] = max(widths[i], utf8.RuneCountInString(c))
			}
		}
		for _, r := range rows {
			for i, c := range r {
				buf.WriteString(c)
				if i < len(r)-1 {
					buf.WriteString(strings.Repeat(" ", widths[i]+2-utf8.RuneCountInString(c)))
				}
			}
			buf.WriteByte('\n')
		}
	}
	var out bytes.Buffer
	for line := range strings.Lines(buf.String()) {
		out.WriteString(strings.TrimRight(line, " \n"))
		out.WriteByte('\n')
	}
	_, err := t.w.Write(out.Bytes())
	return err
}

// cell makes s fit in one table cell: its first line, tabs (and vertical
// tabs and form feeds) as spaces, "-"
// when empty.
func cell(s string) string {
	s, _, _ = strings.Cut(s, "\n")
	if strings.ContainsAny(s, "\t\v\f") { // rare: no replacer made for every cell of a long table
		s = strings.NewReplacer("\t", " ", "\v", " ", "\f", " ").Replace(s)
	}
	if s == "" {
		return "-"
	}
	return s
}

// fields writes "Key:  value" lines with the values aligned. A value of
// several lines continues, aligned, on the following lines.
type fields struct {
	tw     *tabwriter.Writer
	indent string // before each line: a section's fields
}

func newFields(w io.Writer) *fields {
	return &fields{tw: tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)}
}

func (f *fields) add(key, value string) {
	lines := strings.Split(strings.TrimRight(value, "\n"), "\n")
	for i, l := range lines {
		if i == 0 {
			fmt.Fprintf(f.tw, "%s%s:\t%s\n", f.indent, key, strings.ReplaceAll(l, "\t", " "))
			continue
		}
		fmt.Fprintf(f.tw, "%s\t%s\n", f.indent, strings.ReplaceAll(l, "\t", " "))
	}
}

// addIf adds the field only when value is not empty.
func (f *fields) addIf(key, value string) {
	if value != "" {
		f.add(key, value)
	}
}

func (f *fields) flush() error { return f.tw.Flush() }

// timestamp formats t in UTC, RFC 3339; "-" for the zero time or nil.
func timestamp(t *time.Time) string {
	if t == nil || t.IsZero() {
		return "-"
	}
	return t.UTC().Format(time.RFC3339)
}

// runDuration is how long the run took, "" until it has finished.
func runDuration(r api.Run) string {
	if r.StartedAt == nil || r.FinishedAt == nil {
		return ""
	}
	d := r.FinishedAt.Sub(*r.StartedAt)
	if d >= time.Second {
		return d.Round(time.Second).String()
	}
	return d.Round(time.Millisecond).String()
}

// exitCode is the run's exit code as text, "" when it has none.
func exitCode(r api.Run) string {
	if r.ExitCode == nil {
		return ""
	}
	return fmt.Sprint(*r.ExitCode)
}

// runState is the run's state, with the attempt once a run has been
// retried: "pending (attempt 2 of 3)" waits for its second attempt.
func runState(r api.Run) string {
	if r.Attempt > 1 {
		return fmt.Sprintf("%s (attempt %d of %d)", r.State, r.Attempt, r.MaxAttempts)
	}
	return string(r.State)
}

// runResult is the run's state with its exit code, if it has one.
func runResult(r api.Run) string {
	return withExit(runState(r), r.ExitCode)
}

// withExit is "state (exit N)", or the state alone without an exit code.
func withExit(state string, code *int) string {
	if code == nil {
		return state
	}
	return fmt.Sprintf("%s (exit %d)", state, *code)
}

// runSummary is one line on how a run ended (or where it is).
func runSummary(r api.Run) string {
	var b strings.Builder
	fmt.Fprintf(&b, "run %s ", r.ID)
	switch r.State {
	case api.StateTimedOut:
		b.WriteString("timed out")
	default:
		b.WriteString(string(r.State))
	}
	if code := exitCode(r); code != "" {
		fmt.Fprintf(&b, " (exit %s)", code)
	}
	if d := runDuration(r); d != "" {
		fmt.Fprintf(&b, " in %s", d)
	}
	if r.Reason != "" {
		fmt.Fprintf(&b, ": %s", r.Reason)
	}
	return b.String()
}
