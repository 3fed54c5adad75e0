package runner

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"

	"github.com/mao-research/mao/api"
	"github.com/mao-research/mao/orchestrator/container"
	"github.com/mao-research/mao/toolspec"
)

func TestContainerLimits(t *testing.T) {
	tests := []struct {
		name      string
		opts      func(*Options)
		resources *toolspec.Resources
		memory    int64
		pids      int64
	}{
		{"defaults for a tool without resources", nil, nil, 4 << 30, 4096},
		{"resources without memory", nil, &toolspec.Resources{CPUs: 1}, 4 << 30, 4096},
		{"the tool's memory below the default", nil, &toolspec.Resources{Memory: "64MiB"}, 64 << 20, 4096},
		{"the tool's memory above the default", nil, &toolspec.Resources{Memory: "8GiB"}, 8 << 30, 4096},
		{"the site's limits", func(o *Options) { o.DefaultMemory, o.PidsLimit = 1<<30, 64 }, nil, 1 << 30, 64},
		{"the tool's memory above the site's", func(o *Options) { o.DefaultMemory = 1 << 30 }, &toolspec.Resources{Memory: "2GiB"}, 2 << 30, 4096},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var edits []func(*Options)
			if tc.opts != nil {
				edits = append(edits, tc.opts)
			}
			f := newFixture(t, edits...)
			tool := f.reg.tools["t1"]
			tool.Resources = tc.resources
			f.reg.tools["t1"] = tool
			if run := f.runToEnd(t, "t1"); run.State != api.StateSucceeded {
				t.Fatalf("%s: %s", run.State, run.Reason)
			}
			if spec := f.rt.specs[0]; spec.Memory != tc.memory || spec.PidsLimit != tc.pids {
				t.Errorf("memory %d, pids %d; want %d, %d", spec.Memory, spec.PidsLimit, tc.memory, tc.pids)
			}
		})
	}
}

func TestHostNetwork(t *testing.T) {
	for _, allowed := range []bool{false, true} {
		f := newFixture(t, func(o *Options) { o.AllowHostNetwork = allowed })
		tool := f.reg.tools["t1"]
		tool.Network = "host"
		f.reg.tools["t1"] = tool

		err := f.r.CheckTool(tool)
		var invalid *toolspec.ValidationError
		switch {
		case allowed && err != nil:
			t.Errorf("allowed: CheckTool = %v", err)
		case !allowed && (!errors.As(err, &invalid) || invalid.Fields[0].Field != "network" ||
			!strings.Contains(err.Error(), "[runs] allow_host_network")):
			t.Errorf("not allowed: CheckTool = %v, want a problem with network naming [runs] allow_host_network", err)
		}
		tool.Network = "none"
		if err := f.r.CheckTool(tool); err != nil {
			t.Errorf("CheckTool(network none) = %v", err)
		}

		// A scheduled run with retries: a refusal is not retried.
		run, tool := scheduledRun(f, 2)
		f.rec.ended = make(chan string, 1)
		if err := f.r.Launch(context.Background(), run, tool); err != nil {
			t.Fatal(err)
		}
		<-f.rec.ended
		got := f.rec.last(run.ID)
		if allowed {
			if got.State != api.StateSucceeded || len(f.rt.specs) != 1 || f.rt.specs[0].Network != "host" {
				t.Errorf("allowed: %s %q, specs %+v", got.State, got.Reason, f.rt.specs)
			}
			continue
		}
		if got.State != api.StateFailed || !strings.Contains(got.Reason, "network host") ||
			!strings.Contains(got.Reason, "allow_host_network = true in the [runs] section") {
			t.Errorf("not allowed: %s %q", got.State, got.Reason)
		}
		if len(f.rt.specs) != 0 || len(f.git.synced) != 0 {
			t.Errorf("not allowed, yet a container ran (%d) or the clone was synced (%v)", len(f.rt.specs), f.git.synced)
		}
		if states := f.rec.states(run.ID); !slices.Equal(states, []api.RunState{api.StateFailed}) || len(got.Attempts) != 0 {
			t.Errorf("not allowed: states %v, attempts %+v; want one failure, no retry", states, got.Attempts)
		}
	}
}

func TestContainerUser(t *testing.T) {
	tests := []struct {
		name       string
		privileged bool
		toolUser   string
		want       string // the spec's user
		refused    string // the reason's words, when refused
	}{
		{name: "root orchestrator, the image's user", privileged: true, toolUser: "", want: ""},
		{name: "root orchestrator, the tool's user", privileged: true, toolUser: "1000:100", want: "1000:100"},
		{name: "root orchestrator, root", privileged: true, toolUser: "0", want: "0"},
		{name: "orchestrator 1000, the orchestrator's user", toolUser: "", want: "1000:1000"},
		{name: "orchestrator 1000, its uid", toolUser: "1000", want: "1000"},
		{name: "orchestrator 1000, its uid, another group", toolUser: "1000:5", want: "1000:5"},
		{name: "orchestrator 1000, another user", toolUser: "2000:2000",
			refused: "runs as user 2000:2000, but site s1's orchestrator runs as uid 1000 and is not root"},
		{name: "orchestrator 1000, root", toolUser: "0:0", refused: "register the tool with user 1000:1000 or none"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			f := newFixture(t)
			if !tc.privileged {
				f.r.owner, f.r.privileged = owner{uid: 1000, gid: 1000}, false
			}
			f.r.chown = func(string, owner, bool) error { return nil }
			tool := f.reg.tools["t1"]
			tool.User = tc.toolUser
			f.reg.tools["t1"] = tool
			run := f.runToEnd(t, "t1")
			if tc.refused != "" {
				if run.State != api.StateFailed || !strings.Contains(run.Reason, tc.refused) || len(f.rt.specs) != 0 {
					t.Fatalf("%s %q, %d containers; want refused with %q", run.State, run.Reason, len(f.rt.specs), tc.refused)
				}
				return
			}
			if run.State != api.StateSucceeded || f.rt.specs[0].User != tc.want {
				t.Fatalf("%s %q, user %q; want %q", run.State, run.Reason, f.rt.specs[0].User, tc.want)
			}
		})
	}
}

// ownerOf is who owns path, not following a link.
func ownerOf(t *testing.T, path string) owner {
	t.Helper()
	info, err := os.Lstat(path)
	if err != nil {
		t.Fatal(err)
	}
	st := info.Sys().(*syscall.Stat_t)
	return owner{uid: int(st.Uid), gid: int(st.Gid)}
}

// What a container leaves in the data folder becomes the orchestrator's
// user's before the commit: owners (as root), setuid and setgid bits;
// links are not followed. Run as root, the orchestrator's user is 1234:1234
// and the folder is lent to a tool's user for the run; run as another
// user, that user owns everything already and only the bits change.
func TestDataFolderOwnership(t *testing.T) {
	root := os.Geteuid() == 0
	tmp := t.TempDir()
	outside := filepath.Join(tmp, "outside.txt")
	if err := os.WriteFile(outside, []byte("not the tool's\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	me := owner{uid: os.Getuid(), gid: os.Getgid()}
	orchestrator, stranger := me, me
	if root {
		orchestrator, stranger = owner{uid: 1234, gid: 1234}, owner{uid: 4321, gid: 4321}
		if err := os.Lchown(outside, 5555, 5555); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.Chmod(outside, 0o755|fs.ModeSetuid); err != nil { // after chown, which clears it
		t.Fatal(err)
	}
	outsideOwner := ownerOf(t, outside)

	for _, toolUser := range []string{"", "2000:2001"} {
		t.Run("user "+toolUser, func(t *testing.T) {
			if toolUser != "" && !root {
				toolUser = me.String() // the only user a non-root orchestrator lends to
			}
			data := filepath.Join(tmp, "data-"+strings.ReplaceAll(toolUser, ":", "-"))
			f := newFixture(t, func(o *Options) { o.DataDir, o.HostDataDir = data, data })
			f.r.owner, f.r.privileged = orchestrator, root
			dir := filepath.Join(data, "repos", "t1")
			if err := os.MkdirAll(dir, 0o755); err != nil {
				t.Fatal(err)
			}
			if err := os.WriteFile(filepath.Join(dir, "existing.csv"), []byte("1\n"), 0o644); err != nil {
				t.Fatal(err)
			}
			if root {
				for _, p := range []string{dir, filepath.Join(dir, "existing.csv")} {
					if err := os.Lchown(p, orchestrator.uid, orchestrator.gid); err != nil {
						t.Fatal(err)
					}
				}
			}
			tool := f.reg.tools["t1"]
			tool.User = toolUser
			f.reg.tools["t1"] = tool

			var during owner
			var setupErr error
			f.rt.onRun = func(spec container.Spec) {
				src := spec.Mounts[0].Source
				during = ownerOf(t, filepath.Join(src, "existing.csv"))
				must := func(err error) { setupErr = errors.Join(setupErr, err) }
				must(os.WriteFile(filepath.Join(src, "new.csv"), []byte("2\n"), 0o644))
				// A setuid program that the orchestrator's user owns already:
				// only clearing the bits helps.
				must(os.WriteFile(filepath.Join(src, "setuid"), []byte("#!/bin/sh\n"), 0o755))
				must(os.Lchown(filepath.Join(src, "setuid"), orchestrator.uid, orchestrator.gid))
				must(os.Chmod(filepath.Join(src, "setuid"), 0o755|fs.ModeSetuid|fs.ModeSetgid))
				if info, err := os.Stat(filepath.Join(src, "setuid")); err != nil || info.Mode()&fs.ModeSetuid == 0 {
					must(fmt.Errorf("the setuid bit was not set: %v, %v", info, err))
				}
				must(os.Mkdir(filepath.Join(src, "sub"), 0o755))
				must(os.WriteFile(filepath.Join(src, "sub", "deep.csv"), []byte("3\n"), 0o644))
				must(os.Symlink(outside, filepath.Join(src, "escape")))
				must(os.Symlink(tmp, filepath.Join(src, "escape-dir")))
				for _, name := range []string{"new.csv", "sub", "sub/deep.csv", "escape"} {
					must(os.Lchown(filepath.Join(src, name), stranger.uid, stranger.gid))
				}
			}
			run := f.runToEnd(t, "t1")
			if setupErr != nil {
				t.Fatal(setupErr)
			}
			if run.State != api.StateSucceeded || f.git.commits != 1 {
				t.Fatalf("%s %q, %d commits", run.State, run.Reason, f.git.commits)
			}
			if wantDuring := orchestrator; root && toolUser != "" {
				if wantDuring = (owner{uid: 2000, gid: 2001}); during != wantDuring {
					t.Errorf("during the run the data folder's files belonged to %s, want %s (lent)", during, wantDuring)
				}
			} else if during != wantDuring {
				t.Errorf("during the run the data folder's files belonged to %s, want %s", during, wantDuring)
			}
			err := filepath.WalkDir(dir, func(path string, d fs.DirEntry, err error) error {
				if err != nil {
					return err
				}
				if got := ownerOf(t, path); got != orchestrator {
					t.Errorf("%s belongs to %s after the run, want %s", path, got, orchestrator)
				}
				if info, _ := d.Info(); !d.IsDir() && info.Mode()&(fs.ModeSetuid|fs.ModeSetgid) != 0 {
					t.Errorf("%s keeps mode %s", path, info.Mode())
				}
				return nil
			})
			if err != nil {
				t.Fatal(err)
			}
			info, err := os.Stat(outside)
			if err != nil {
				t.Fatal(err)
			}
			if ownerOf(t, outside) != outsideOwner || info.Mode()&fs.ModeSetuid == 0 {
				t.Errorf("a link was followed out of the data folder: %s is %s, %s now", outside, ownerOf(t, outside), info.Mode())
			}
			if got := ownerOf(t, tmp); got != me {
				t.Errorf("a link was followed out of the data folder: %s belongs to %s now", tmp, got)
			}
		})
	}
}

func TestDataFolderOwnershipFailures(t *testing.T) {
	failing := errors.New("operation not permitted")
	tests := []struct {
		name     string
		toolUser string
		fail     func(o owner) bool // which chown fails
		reason   string
		ran      bool
	}{
		{name: "take back", fail: func(o owner) bool { return o.uid == 0 }, ran: true,
			reason: "take back the data folder for the orchestrator's user 0:0: operation not permitted"},
		{name: "lend", toolUser: "2000:2001", fail: func(o owner) bool { return o.uid == 2000 },
			reason: "lend the data folder to user 2000:2001: operation not permitted"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			f := newFixture(t)
			var calls []string
			f.r.chown = func(dir string, o owner, clearSetID bool) error {
				calls = append(calls, o.String())
				if tc.fail(o) {
					return failing
				}
				return nil
			}
			tool := f.reg.tools["t1"]
			tool.User = tc.toolUser
			f.reg.tools["t1"] = tool
			run := f.runToEnd(t, "t1")
			if run.State != api.StateFailed || run.Reason != tc.reason {
				t.Fatalf("%s %q, want failed %q", run.State, run.Reason, tc.reason)
			}
			if f.git.commits != 0 || len(f.git.discarded) != 1 || (len(f.rt.specs) == 1) != tc.ran {
				t.Errorf("%d commits, %d discards, %d containers", f.git.commits, len(f.git.discarded), len(f.rt.specs))
			}
			if calls[len(calls)-1] != "0:0" {
				t.Errorf("chown calls %v: the folder was not taken back at the end", calls)
			}
		})
	}
}
