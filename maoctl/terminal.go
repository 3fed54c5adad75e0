package maoctl

import (
	"io"
	"unicode/utf8"

	"golang.org/x/term"
)

// isTerminal reports whether w is a terminal.
func isTerminal(w io.Writer) bool {
	f, ok := w.(interface{ Fd() uintptr })
	return ok && term.IsTerminal(int(f.Fd()))
}

// logWriter is where a run's log goes: stdout as it is when stdout is not a
// terminal or raw is set, else stdout through a stripper of terminal
// control sequences.
func (c *ctl) logWriter(raw bool) io.Writer {
	if raw || !c.tty {
		return c.stdout
	}
	return &stripper{w: c.stdout}
}

// States of a stripper.
const (
	ground    = iota // text
	escape           // after ESC
	escInter         // in an escape sequence, after an intermediate byte (ESC ( B)
	csi              // in a control sequence (ESC [ ... final)
	command          // in a control string: OSC, DCS, SOS, PM or APC, until BEL or ST
	cmdEscape        // after ESC in a control string: ST (ESC \) or a new sequence
)

// stripper writes a log to a terminal without what would drive the
// terminal rather than show text: escape sequences (CSI: colours, cursor
// moves, erasing; OSC: titles, clipboard writes (OSC 52), hyperlinks; DCS,
// SOS, PM, APC strings; two-byte escapes), their 8-bit C1 forms, and every
// other C0 or C1 control but newline and tab (bell, backspace, DEL...). A
// carriage return becomes a newline (CR LF stays one newline), so that
// later output cannot hide earlier output on the same line. A control
// string that is never terminated ends at the next newline, so that it
// cannot swallow the rest of the log. Bytes that are not UTF-8 become
// U+FFFD. Sequences split across writes are handled.
type stripper struct {
	w      io.Writer
	state  int
	skipLF bool   // a CR was just turned into a newline: a following LF is part of it
	carry  []byte // the start of a UTF-8 sequence that the next write completes
	out    []byte
}

func (s *stripper) Write(p []byte) (int, error) {
	data := p
	if len(s.carry) > 0 {
		data = append(s.carry, p...)
		s.carry = nil
	}
	s.out = s.out[:0]
	for len(data) > 0 {
		r, size := rune(data[0]), 1
		if r >= utf8.RuneSelf {
			if !utf8.FullRune(data) {
				s.carry = append([]byte(nil), data...)
				break
			}
			r, size = utf8.DecodeRune(data) // an invalid byte is U+FFFD
		}
		data = data[size:]
		s.rune(r)
	}
	if len(s.out) > 0 {
		if _, err := s.w.Write(s.out); err != nil {
			return 0, err
		}
	}
	return len(p), nil
}

// rune takes one character in the current state.
func (s *stripper) rune(r rune) {
	switch s.state {
	case escape:
		switch {
		case r == '[':
			s.state = csi
		case r == ']' || r == 'P' || r == 'X' || r == '^' || r == '_':
			s.state = command
		case r >= 0x20 && r <= 0x2f:
			s.state = escInter
		case r >= 0x30 && r <= 0x7e:
			s.state = ground
		case r == 0x1b:
		default: // not a sequence after all
			s.state = ground
			s.rune(r)
		}
		return
	case escInter:
		switch {
		case r >= 0x20 && r <= 0x2f:
		case r >= 0x30 && r <= 0x7e:
			s.state = ground
		default:
			s.state = ground
			s.rune(r)
		}
		return
	case csi:
		switch {
		case r >= 0x20 && r <= 0x3f: // parameters and intermediates
		case r >= 0x40 && r <= 0x7e:
			s.state = ground
		default:
			s.state = ground
			s.rune(r)
		}
		return
	case command:
		switch r {
		case 0x07, 0x9c: // BEL, ST
			s.state = ground
		case 0x1b:
			s.state = cmdEscape
		case '\n':
			s.state = ground
			s.rune(r)
		}
		return
	case cmdEscape:
		if r == '\\' {
			s.state = ground
			return
		}
		s.state = escape
		s.rune(r)
		return
	}

	switch {
	case r == '\n':
		if !s.skipLF {
			s.out = append(s.out, '\n')
		}
		s.skipLF = false
	case r == '\r':
		s.out = append(s.out, '\n')
		s.skipLF = true
	case r == '\t':
		s.out = append(s.out, '\t')
		s.skipLF = false
	case r == 0x1b:
		s.state = escape
	case r == 0x9b:
		s.state = csi
	case r == 0x9d || r == 0x90 || r == 0x98 || r == 0x9e || r == 0x9f:
		s.state = command
	case r < 0x20 || (r >= 0x7f && r <= 0x9f):
		// other C0 and C1 controls, DEL: dropped
	default:
		s.out = utf8.AppendRune(s.out, r)
		s.skipLF = false
	}
}
