package toolspec

import (
	"encoding/json"
	"net/url"
	"strings"
	"testing"
	"time"
)

// The fuzz tests' seed corpora are in testdata/fuzz/<name>; `go test` runs
// them as ordinary tests, and `go test -fuzz=FuzzTool ./toolspec` explores.

// FuzzTool decodes a tool spec as the API (JSON) and maoctl (JSON or YAML)
// do and validates it: neither may panic, and a valid tool has no
// credentials in its URLs and survives a JSON round trip.
func FuzzTool(f *testing.F) {
	f.Add([]byte(`{"name":"t1","author":"a","image":"busybox","data_repo":"https://h.example/r.git"}`), true)
	f.Add([]byte("name: t1\nauthor: a\nimage: busybox\ndata_repo: git@h.example:r.git\n"), false)
	f.Fuzz(func(t *testing.T, data []byte, isJSON bool) {
		var tool Tool
		if Decode(data, isJSON, &tool) != nil {
			return
		}
		for _, u := range append([]string{tool.DataRepo, tool.CodeRepo}, tool.Notify...) {
			shown := RedactURL(u)
			if again := RedactURL(shown); again != shown {
				t.Fatalf("RedactURL is not stable: %q -> %q -> %q", u, shown, again)
			}
			_ = RedactText(u)
		}
		if tool.Validate() != nil {
			return
		}
		if RedactURL(tool.DataRepo) != tool.DataRepo || RedactURL(tool.CodeRepo) != tool.CodeRepo {
			t.Fatalf("a valid tool has credentials: %q %q", tool.DataRepo, tool.CodeRepo)
		}
		_, _, _, _ = tool.TimeoutDuration(), tool.NetworkName(), tool.MemoryBytes(), tool.CPUs()
		data, err := json.Marshal(tool)
		if err != nil {
			t.Fatalf("marshal a valid tool: %v", err)
		}
		var back Tool
		if err := Decode(data, true, &back); err != nil {
			t.Fatalf("decode %s: %v", data, err)
		}
		if err := back.Validate(); err != nil {
			t.Fatalf("a valid tool is invalid after a JSON round trip %s: %v", data, err)
		}
	})
}

// FuzzDataset is FuzzTool for dataset specs.
func FuzzDataset(f *testing.F) {
	f.Add([]byte(`{"name":"d","url":"file:///srv/d.git","branch":"main"}`), true)
	f.Add([]byte("name: d\nurl: ssh://git@h.example/d.git\n"), false)
	f.Fuzz(func(t *testing.T, data []byte, isJSON bool) {
		var ds Dataset
		if Decode(data, isJSON, &ds) != nil || ds.Validate() != nil {
			return
		}
		if RedactURL(ds.URL) != ds.URL {
			t.Fatalf("a valid dataset has credentials: %q", ds.URL)
		}
	})
}

// FuzzSchedule decodes, completes and validates a schedule; for a valid
// one, its timing's ticks move forward and Ticks returns what it promises.
// None of it may panic.
func FuzzSchedule(f *testing.F) {
	f.Add([]byte(`{"tool":"t1","spec":"daily","at":"06:30","tz":"Europe/Zurich"}`), true, int64(1700000000))
	f.Add([]byte(`{"tool":"t1","spec":"*/5 * * * *","target":{"mode":"all","labels":{"gpu":"yes"}}}`), true, int64(0))
	f.Add([]byte("tool: t1\nspec: '@every 90s'\nretries: 3\nretry_delay: 10s\n"), false, int64(-86400))
	f.Fuzz(func(t *testing.T, data []byte, isJSON bool, unix int64) {
		var s Schedule
		if Decode(data, isJSON, &s) != nil {
			return
		}
		s.ApplyDefaults("UTC")
		if s.Validate() != nil {
			return
		}
		timing, err := s.Timing()
		if err != nil {
			t.Fatalf("a valid schedule has no timing: %v", err)
		}
		// Keep the instant within years that the calendar handles.
		at := time.Unix(unix%(1<<34), 0).UTC()
		next := timing.Next(at)
		if !next.IsZero() && !next.After(at) {
			t.Fatalf("%q: Next(%s) = %s, not after it", s.Spec, at, next)
		}
		last, _ := Ticks(timing, at, at.Add(48*time.Hour), 3)
		if len(last) > 3 {
			t.Fatalf("Ticks kept %d ticks, want at most 3", len(last))
		}
		for i, tick := range last {
			if !tick.After(at) || tick.After(at.Add(48*time.Hour)) || i > 0 && !tick.After(last[i-1]) {
				t.Fatalf("%q: ticks %v are not in order in (%s, +48h]", s.Spec, last, at)
			}
		}
	})
}

// FuzzRedactURL checks RedactURL on any string: it is stable, and a URL
// that parses with a password, or with a user outside ssh, is shown with
// *** in its place.
func FuzzRedactURL(f *testing.F) {
	for _, s := range []string{"https://ada:hunter2@h.example/r.git", "https://tok@h.example/r", "ssh://git@h.example/r",
		"git:pw@h.example:r.git", "git@h.example:r.git", "https://a%zz@h/r", "file:///srv/r"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		shown := RedactURL(s)
		if again := RedactURL(shown); again != shown {
			t.Fatalf("not stable: %q -> %q -> %q", s, shown, again)
		}
		u, err := url.Parse(s)
		if err != nil || u.User == nil || !strings.Contains(s, "://") {
			return
		}
		v, err := url.Parse(shown)
		if err != nil {
			t.Fatalf("%q is shown as %q, which does not parse: %v", s, shown, err)
		}
		_, hasPassword := u.User.Password()
		password, _ := v.User.Password()
		ssh := strings.EqualFold(u.Scheme, "ssh") || strings.EqualFold(u.Scheme, "git+ssh") || strings.EqualFold(u.Scheme, "ssh+git")
		switch {
		case hasPassword && password != hiddenCredential:
			t.Fatalf("%q is shown as %q: its password is not hidden", s, shown)
		case !hasPassword && !ssh && v.User.Username() != hiddenCredential:
			t.Fatalf("%q is shown as %q: its user is not hidden", s, shown)
		}
	})
}
