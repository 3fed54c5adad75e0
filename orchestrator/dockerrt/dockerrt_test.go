package dockerrt_test

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	dcontainer "github.com/docker/docker/api/types/container"
	"github.com/docker/docker/api/types/filters"
	"github.com/docker/docker/api/types/image"
	"github.com/docker/docker/client"
	"github.com/jonboulle/clockwork"

	"github.com/mao-research/mao/internal/testenv"
	"github.com/mao-research/mao/orchestrator/container"
	"github.com/mao-research/mao/orchestrator/dockerrt"
)

// testLabel marks every container a test makes; its value is unique per test.
const testLabel = "mao.test"

// dataDir is where tools find their data folder.
const dataDir = "/usr/src/app/data"

// fixture is one test's runtime, engine client and unique container identity.
type fixture struct {
	rt    *dockerrt.Runtime
	dc    *client.Client
	image string
	id    string // unique per test: container name suffix and testLabel value
}

func setup(t *testing.T) fixture {
	t.Helper()
	img := testenv.BuildTestImage(t)
	rt, err := dockerrt.New(dockerrt.Options{StopGrace: time.Second})
	if err != nil {
		t.Fatal(err)
	}
	f := fixture{rt: rt, dc: testenv.Docker(t), image: img, id: uniqueID(t)}
	t.Cleanup(func() {
		// Hygiene only: tests assert removal themselves.
		if _, err := rt.RemoveLabelled(context.Background(), testLabel, f.id); err != nil {
			t.Error(err)
		}
		rt.Close()
	})
	return f
}

// uniqueID turns the test name into a container-name-safe id with a random
// suffix, so tests can run in parallel and repeatedly.
func uniqueID(t *testing.T) string {
	name := strings.Map(func(r rune) rune {
		switch {
		case r >= 'a' && r <= 'z', r >= '0' && r <= '9':
			return r
		case r >= 'A' && r <= 'Z':
			return r - 'A' + 'a'
		default:
			return '-'
		}
	}, t.Name())
	if len(name) > 40 {
		name = name[:40]
	}
	suffix := make([]byte, 4)
	if _, err := rand.Read(suffix); err != nil {
		t.Fatal(err)
	}
	return name + "-" + hex.EncodeToString(suffix)
}

// spec is a run of the test tool with args, labelled for this test.
func (f fixture) spec(args ...string) container.Spec {
	return container.Spec{
		Name:    "mao-test-" + f.id,
		Image:   f.image,
		Cmd:     args,
		Labels:  map[string]string{testLabel: f.id},
		Network: "none",
	}
}

// containers lists this test's containers, running or not.
func (f fixture) containers(t *testing.T) []dcontainer.Summary {
	t.Helper()
	list, err := f.dc.ContainerList(context.Background(), dcontainer.ListOptions{
		All:     true,
		Filters: filters.NewArgs(filters.Arg("label", testLabel+"="+f.id)),
	})
	if err != nil {
		t.Fatal(err)
	}
	return list
}

func (f fixture) assertGone(t *testing.T) {
	t.Helper()
	if list := f.containers(t); len(list) != 0 {
		t.Errorf("%d container(s) left: %+v", len(list), list)
	}
}

func numberedLines(n int) string {
	var b strings.Builder
	for i := 1; i <= n; i++ {
		fmt.Fprintf(&b, "line %d\n", i)
	}
	return b.String()
}

func TestRun(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name     string
		args     []string
		env      []string
		wantCode int
		wantOut  string
	}{
		{name: "output in order", args: []string{"-lines", "200"}, wantOut: numberedLines(200)},
		{name: "exit code and stderr", args: []string{"-exit", "3"}, wantCode: 3, wantOut: "exiting with 3\n"},
		{
			name:    "environment",
			args:    []string{"-env"},
			env:     []string{"TOOL_ALPHA=a b", "OTHER=x", "MAO_RUN_ID=r1"},
			wantOut: "MAO_RUN_ID=r1\nTOOL_ALPHA=a b\n",
		},
		{name: "image cmd when none given", wantOut: ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			f := setup(t)
			spec := f.spec(tt.args...)
			spec.Env = tt.env
			var out bytes.Buffer
			exit, err := f.rt.Run(context.Background(), spec, &out)
			if err != nil {
				t.Fatal(err)
			}
			if exit.Code != tt.wantCode || exit.TimedOut || exit.ContainerID == "" {
				t.Errorf("exit = %+v, want code %d", exit, tt.wantCode)
			}
			if out.String() != tt.wantOut {
				t.Errorf("output:\n%q\nwant\n%q", out.String(), tt.wantOut)
			}
			f.assertGone(t)
		})
	}
}

// Containers that exit at once must neither lose output nor race the wait.
func TestRunFastContainers(t *testing.T) {
	t.Parallel()
	f := setup(t)
	for i := range 10 {
		var out bytes.Buffer
		exit, err := f.rt.Run(context.Background(), f.spec("-lines", "3"), &out)
		if err != nil {
			t.Fatalf("run %d: %v", i, err)
		}
		if exit.Code != 0 || out.String() != numberedLines(3) {
			t.Fatalf("run %d: exit %+v, output %q", i, exit, out.String())
		}
	}
	f.assertGone(t)
}

func TestRunMounts(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name      string
		readOnly  bool
		wantCode  int
		wantOut   string
		wantFiles int
	}{
		{name: "read-write", wantOut: "wrote control-", wantFiles: 1},
		{name: "read-only", readOnly: true, wantCode: 1, wantOut: "write control:", wantFiles: 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			f := setup(t)
			dir := t.TempDir()
			spec := f.spec("-control", "42")
			spec.Mounts = []container.Mount{{Source: dir, Target: dataDir, ReadOnly: tt.readOnly}}
			var out bytes.Buffer
			exit, err := f.rt.Run(context.Background(), spec, &out)
			if err != nil {
				t.Fatal(err)
			}
			if exit.Code != tt.wantCode || !strings.Contains(out.String(), tt.wantOut) {
				t.Errorf("exit %+v, output %q; want code %d and %q", exit, out.String(), tt.wantCode, tt.wantOut)
			}
			files, err := filepath.Glob(filepath.Join(dir, "control-*.csv"))
			if err != nil {
				t.Fatal(err)
			}
			if len(files) != tt.wantFiles {
				t.Fatalf("control files %v, want %d", files, tt.wantFiles)
			}
			for _, name := range files {
				if data, err := os.ReadFile(name); err != nil || string(data) != "42\n" {
					t.Errorf("%s: %q, %v", name, data, err)
				}
			}
			f.assertGone(t)
		})
	}
}

func TestRunTimeout(t *testing.T) {
	t.Parallel()
	f := setup(t)
	spec := f.spec("-sleep", "60s")
	spec.Timeout = time.Second
	var out bytes.Buffer
	start := time.Now()
	exit, err := f.rt.Run(context.Background(), spec, &out)
	if err != nil {
		t.Fatal(err)
	}
	if elapsed := time.Since(start); elapsed > 15*time.Second {
		t.Errorf("took %v", elapsed)
	}
	if !exit.TimedOut {
		t.Errorf("exit = %+v, want TimedOut", exit)
	}
	if !strings.Contains(out.String(), "sleeping 1m0s") {
		t.Errorf("output %q", out.String())
	}
	f.assertGone(t)
}

// TestRunTimesWithItsClock checks that the runtime's clock, not the wall
// clock, stamps the container's start and times the run out: a run with a
// timeout of an hour ends when the test's fake clock passes the hour.
func TestRunTimesWithItsClock(t *testing.T) {
	t.Parallel()
	f := setup(t)
	then := time.Date(2030, 6, 1, 12, 0, 0, 0, time.UTC)
	clock := clockwork.NewFakeClockAt(then)
	rt, err := dockerrt.New(dockerrt.Options{StopGrace: time.Second, Clock: clock})
	if err != nil {
		t.Fatal(err)
	}
	defer rt.Close()
	f.rt = rt
	spec := f.spec()
	spec.Timeout = time.Hour
	done := startSleeper(context.Background(), t, f, spec)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := clock.BlockUntilContext(ctx, 1); err != nil {
		t.Fatalf("the run's timeout timer: %v", err)
	}
	clock.Advance(time.Hour)
	res := <-done
	if res.err != nil {
		t.Fatal(res.err)
	}
	if !res.exit.TimedOut || !res.exit.StartedAt.Equal(then) {
		t.Errorf("exit = %+v; want timed out, started at %s", res.exit, then)
	}
	f.assertGone(t)
}

// markWriter collects output and closes seen once it contains marker.
type markWriter struct {
	mu     sync.Mutex
	buf    bytes.Buffer
	marker string
	seen   chan struct{}
}

func newMarkWriter(marker string) *markWriter {
	return &markWriter{marker: marker, seen: make(chan struct{})}
}

func (w *markWriter) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.buf.Write(p)
	if w.marker != "" && bytes.Contains(w.buf.Bytes(), []byte(w.marker)) {
		close(w.seen)
		w.marker = ""
	}
	return len(p), nil
}

type runResult struct {
	exit container.Exit
	err  error
}

// startSleeper runs the tool with -sleep 60s in the background and returns
// once it is sleeping, with the channel Run's result arrives on.
func startSleeper(ctx context.Context, t *testing.T, f fixture, spec container.Spec) <-chan runResult {
	t.Helper()
	spec.Cmd = []string{"-sleep", "60s"}
	w := newMarkWriter("sleeping")
	done := make(chan runResult, 1)
	go func() {
		exit, err := f.rt.Run(ctx, spec, w)
		done <- runResult{exit, err}
	}()
	select {
	case <-w.seen:
		return done
	case res := <-done:
		t.Fatalf("run ended before sleeping: %+v, %v", res.exit, res.err)
		return nil
	}
}

func TestRunCancel(t *testing.T) {
	t.Parallel()
	f := setup(t)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	done := startSleeper(ctx, t, f, f.spec())
	start := time.Now()
	cancel()
	res := <-done
	if !errors.Is(res.err, context.Canceled) {
		t.Errorf("Run error = %v, want context.Canceled", res.err)
	}
	if res.exit.TimedOut {
		t.Errorf("exit = %+v, want not TimedOut", res.exit)
	}
	if elapsed := time.Since(start); elapsed > 15*time.Second {
		t.Errorf("took %v after cancel", elapsed)
	}
	f.assertGone(t)
}

func TestRunAppliesSpec(t *testing.T) {
	t.Parallel()
	f := setup(t)
	spec := f.spec()
	spec.Labels["mao.run"] = "r1"
	spec.NanoCPUs = 500_000_000
	spec.Memory = 64 << 20
	spec.PidsLimit = 100
	spec.User = "1000:1000"
	spec.Mounts = []container.Mount{{Source: t.TempDir(), Target: dataDir, ReadOnly: true}}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	done := startSleeper(ctx, t, f, spec)

	list := f.containers(t)
	if len(list) != 1 {
		t.Fatalf("%d containers labelled %s=%s, want 1", len(list), testLabel, f.id)
	}
	got, err := f.dc.ContainerInspect(context.Background(), list[0].ID)
	if err != nil {
		t.Fatal(err)
	}
	hc := got.HostConfig
	if hc.NanoCPUs != spec.NanoCPUs || hc.Memory != spec.Memory || hc.MemorySwap != spec.Memory || hc.LogConfig.Type != "json-file" || hc.NetworkMode != "none" {
		t.Errorf("host config: NanoCPUs %d, Memory %d, log driver %q, NetworkMode %q",
			hc.NanoCPUs, hc.Memory, hc.LogConfig.Type, hc.NetworkMode)
	}
	if hc.PidsLimit == nil || *hc.PidsLimit != 100 || !slices.Equal(hc.SecurityOpt, []string{"no-new-privileges"}) ||
		!slices.Equal(hc.CapDrop, []string{"ALL"}) || !slices.Equal(hc.CapAdd, capNames(dockerrt.Capabilities())) || hc.Privileged {
		t.Errorf("host config: PidsLimit %v, SecurityOpt %v, CapDrop %v, CapAdd %v, Privileged %v",
			hc.PidsLimit, hc.SecurityOpt, hc.CapDrop, hc.CapAdd, hc.Privileged)
	}
	if got.Config.User != "1000:1000" {
		t.Errorf("user %q", got.Config.User)
	}
	if got.Config.Labels["mao.run"] != "r1" || got.Name != "/"+spec.Name || got.Config.Tty || got.Config.OpenStdin {
		t.Errorf("config: name %q, labels %v, tty %v, stdin %v", got.Name, got.Config.Labels, got.Config.Tty, got.Config.OpenStdin)
	}
	if len(got.Mounts) != 1 || got.Mounts[0].Destination != dataDir || got.Mounts[0].RW {
		t.Errorf("mounts: %+v", got.Mounts)
	}

	cancel()
	if res := <-done; !errors.Is(res.err, context.Canceled) {
		t.Errorf("Run error = %v, want context.Canceled", res.err)
	}
	f.assertGone(t)
}

// capNames are names as the engine reports them, with CAP_.
func capNames(names []string) []string {
	out := make([]string, len(names))
	for i, n := range names {
		out[i] = "CAP_" + n
	}
	return out
}

// capMask is the capability bit set of names, as /proc/PID/status shows it.
func capMask(t *testing.T, names []string) string {
	t.Helper()
	bits := map[string]uint{"CHOWN": 0, "DAC_OVERRIDE": 1, "DAC_READ_SEARCH": 2, "FOWNER": 3, "FSETID": 4, "KILL": 5,
		"SETGID": 6, "SETUID": 7, "SETPCAP": 8, "NET_BIND_SERVICE": 10, "NET_RAW": 13, "SYS_CHROOT": 18, "MKNOD": 27,
		"AUDIT_WRITE": 29, "SETFCAP": 31}
	var mask uint64
	for _, n := range names {
		bit, ok := bits[n]
		if !ok {
			t.Fatalf("capMask does not know %s", n)
		}
		mask |= 1 << bit
	}
	return fmt.Sprintf("%016x", mask)
}

// What a process in the container is allowed, read from inside it: no new
// privileges, only Capabilities, and none at all for another user than
// root.
func TestRunSecurityDefaults(t *testing.T) {
	t.Parallel()
	caps := capMask(t, dockerrt.Capabilities())
	none := capMask(t, nil)
	tests := []struct {
		user                 string
		whoami               string
		effective, permitted string
	}{
		{user: "", whoami: "uid=0 gid=0", effective: caps, permitted: caps},
		{user: "1000:1000", whoami: "uid=1000 gid=1000", effective: none, permitted: none},
		{user: "4321", whoami: "uid=4321 gid=0", effective: none, permitted: none},
	}
	for _, tt := range tests {
		t.Run("user "+tt.user, func(t *testing.T) {
			t.Parallel()
			f := setup(t)
			spec := f.spec("-whoami", "-caps")
			spec.User = tt.user
			var out bytes.Buffer
			if exit, err := f.rt.Run(context.Background(), spec, &out); err != nil || exit.Code != 0 {
				t.Fatalf("exit %+v, %v\n%s", exit, err, out.String())
			}
			want := fmt.Sprintf("%s\nCapInh: %s\nCapPrm: %s\nCapEff: %s\nCapBnd: %s\nCapAmb: %s\nNoNewPrivs: 1\n",
				tt.whoami, none, tt.permitted, tt.effective, caps, none)
			if out.String() != want {
				t.Errorf("inside the container:\n%s\nwant\n%s", out.String(), want)
			}
		})
	}
}

// The capabilities left are enough for a root tool to write its output
// into a data folder that another user owns (the orchestrator's), with the
// file operations tools use, including giving files away as tar does.
func TestRunCapabilitiesSufficeForWrites(t *testing.T) {
	t.Parallel()
	f := setup(t)
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "existing.csv"), []byte("1\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if os.Getuid() == 0 { // else the folder is another user's already
		for _, p := range []string{dir, filepath.Join(dir, "existing.csv")} {
			if err := os.Chown(p, 1000, 1000); err != nil {
				t.Fatal(err)
			}
		}
	}
	if err := os.Chmod(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	spec := f.spec("-writes")
	spec.Mounts = []container.Mount{{Source: dir, Target: dataDir}}
	var out bytes.Buffer
	exit, err := f.rt.Run(context.Background(), spec, &out)
	if err != nil || exit.Code != 0 || strings.Contains(out.String(), "ERROR") || !strings.Contains(out.String(), "chown: ok") {
		t.Fatalf("exit %+v, %v; the writes:\n%s", exit, err, out.String())
	}
}

// A fork bomb meets the pids limit: it starts fewer processes than the
// limit, the run ends, nothing of it is left and the host can still start
// processes.
func TestRunPidsBomb(t *testing.T) {
	t.Parallel()
	f := setup(t)
	const limit = 64
	spec := f.spec("-fork", "500", "-limits")
	spec.PidsLimit = limit
	var out bytes.Buffer
	start := time.Now()
	exit, err := f.rt.Run(context.Background(), spec, &out)
	if err != nil || exit.Code != 0 {
		t.Fatalf("exit %+v, %v\n%s", exit, err, out.String())
	}
	if elapsed := time.Since(start); elapsed > time.Minute {
		t.Errorf("the bomb took %v to end", elapsed)
	}
	if !strings.Contains(out.String(), fmt.Sprintf("pids.max=%d\n", limit)) {
		t.Errorf("the container's cgroup does not show the limit:\n%s", out.String())
	}
	m := regexp.MustCompile(`started (\d+) of 500\n`).FindStringSubmatch(out.String())
	if m == nil {
		t.Fatalf("no count in the output:\n%s", out.String())
	}
	t.Logf("the bomb started %s processes", m[1])
	if n, _ := strconv.Atoi(m[1]); n == 0 || n >= limit {
		t.Errorf("the bomb started %d processes; want some, and fewer than the limit %d\n%s", n, limit, out.String())
	}
	f.assertGone(t)
	if err := exec.Command("true").Run(); err != nil {
		t.Errorf("the host cannot start a process after the bomb: %v", err)
	}
}

func TestRunCreateFailure(t *testing.T) {
	t.Parallel()
	f := setup(t)
	spec := f.spec()
	spec.Image = "mao-test-missing:none"
	if _, err := f.rt.Run(context.Background(), spec, nil); err == nil || !strings.Contains(err.Error(), "create") {
		t.Errorf("Run error = %v, want a create error", err)
	}
	f.assertGone(t)
}

// TestRunReady checks Spec.Ready: it is called once the container exists
// and before it starts (the container is there, created, not running);
// when it fails, Run returns its error as it is and removes the container,
// which never ran.
func TestRunReady(t *testing.T) {
	t.Parallel()
	errNotSynced := errors.New("the data folder did not sync")
	tests := []struct {
		name   string
		ready  error
		output string
	}{
		{"ready", nil, numberedLines(2)},
		{"not ready", errNotSynced, ""},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			f := setup(t)
			spec := f.spec("-lines", "2")
			var seen []string
			spec.Ready = func(context.Context) error {
				for _, c := range f.containers(t) {
					seen = append(seen, c.State)
				}
				return tc.ready
			}
			var out bytes.Buffer
			exit, err := f.rt.Run(context.Background(), spec, &out)
			if !slices.Equal(seen, []string{"created"}) {
				t.Errorf("when Ready was called, the containers were %v; want one created", seen)
			}
			if tc.ready != nil {
				if err != tc.ready || !exit.StartedAt.IsZero() {
					t.Errorf("Run = %+v, %v; want Ready's error as it is, not started", exit, err)
				}
			} else if err != nil || exit.Code != 0 || out.String() != tc.output {
				t.Errorf("Run = %+v, %v, output %q", exit, err, out.String())
			}
			f.assertGone(t)
		})
	}
}

func TestRunStartFailure(t *testing.T) {
	t.Parallel()
	f := setup(t)
	tag := "mao-test-badentry:" + f.id
	err := testenv.BuildImage(f.dc, tag, map[string][]byte{
		"Dockerfile": []byte("FROM scratch\nCOPY note /note\nENTRYPOINT [\"/nonexistent\"]\n"),
		"note":       []byte("no executable here\n"),
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if _, err := f.dc.ImageRemove(context.Background(), tag, image.RemoveOptions{Force: true, PruneChildren: true}); err != nil {
			t.Error(err)
		}
	})
	spec := f.spec()
	spec.Image = tag
	if _, err := f.rt.Run(context.Background(), spec, nil); err == nil || !strings.Contains(err.Error(), "start") {
		t.Errorf("Run error = %v, want a start error", err)
	}
	f.assertGone(t)
}

func TestEnsureImage(t *testing.T) {
	t.Parallel()
	f := setup(t)
	ctx := context.Background()
	want, err := f.dc.ImageInspect(ctx, f.image)
	if err != nil {
		t.Fatal(err)
	}
	img, err := f.rt.EnsureImage(ctx, f.image)
	if err != nil {
		t.Fatal(err)
	}
	if img.ID != want.ID || img.Digest != "" {
		t.Errorf("EnsureImage = %+v, want ID %s and no digest (built locally)", img, want.ID)
	}

	tests := []struct {
		name, ref, wantErr string
	}{
		// A registry that is not there: a closed port on loopback. The
		// engine fails the pull request itself.
		{name: "no registry", ref: "127.0.0.1:9/missing:1", wantErr: "connection refused"},
		// The manifest is served but its blobs are not: the engine reports
		// the failure inside the pull stream.
		{name: "missing blobs", ref: brokenRegistry(t) + "/broken:1", wantErr: "unknown blob"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := f.rt.EnsureImage(ctx, tt.ref)
			if err == nil || !strings.HasPrefix(err.Error(), "pull "+tt.ref+": ") || !strings.Contains(err.Error(), tt.wantErr) {
				t.Errorf("EnsureImage(%s) = %v, want a pull error mentioning %q", tt.ref, err, tt.wantErr)
			}
		})
	}
}

// brokenRegistry serves, on loopback, a registry whose only image "broken:1"
// has a manifest but none of its blobs. It returns the registry's host:port.
func brokenRegistry(t *testing.T) string {
	t.Helper()
	digest := func(b []byte) string { return fmt.Sprintf("sha256:%x", sha256.Sum256(b)) }
	manifest, err := json.Marshal(map[string]any{
		"schemaVersion": 2,
		"mediaType":     "application/vnd.docker.distribution.manifest.v2+json",
		"config": map[string]any{
			"mediaType": "application/vnd.docker.container.image.v1+json", "size": 2, "digest": digest([]byte("{}")),
		},
		"layers": []map[string]any{{
			"mediaType": "application/vnd.docker.image.rootfs.diff.tar.gzip", "size": 5, "digest": digest([]byte("layer")),
		}},
	})
	if err != nil {
		t.Fatal(err)
	}
	mux := http.NewServeMux()
	mux.HandleFunc("/v2/{$}", func(w http.ResponseWriter, r *http.Request) {})
	mux.HandleFunc("/v2/broken/manifests/{ref}", func(w http.ResponseWriter, r *http.Request) {
		if ref := r.PathValue("ref"); ref != "1" && ref != digest(manifest) {
			http.NotFound(w, r)
			return
		}
		w.Header().Set("Content-Type", "application/vnd.docker.distribution.manifest.v2+json")
		w.Header().Set("Docker-Content-Digest", digest(manifest))
		w.Write(manifest)
	})
	mux.HandleFunc("/v2/broken/blobs/", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(http.StatusNotFound)
		w.Write([]byte(`{"errors":[{"code":"BLOB_UNKNOWN","message":"blob unknown to registry"}]}`))
	})
	srv := httptest.NewServer(mux)
	t.Cleanup(srv.Close)
	return strings.TrimPrefix(srv.URL, "http://")
}

func TestRemoveLabelled(t *testing.T) {
	t.Parallel()
	f := setup(t)
	ctx := context.Background()
	other := f.id + "-other"
	for i, value := range []string{f.id, f.id, other} {
		_, err := f.dc.ContainerCreate(ctx,
			&dcontainer.Config{Image: f.image, Labels: map[string]string{testLabel: value}},
			&dcontainer.HostConfig{NetworkMode: "none"}, nil, nil, fmt.Sprintf("mao-test-%s-%d", f.id, i))
		if err != nil {
			t.Fatal(err)
		}
	}
	n, err := f.rt.RemoveLabelled(ctx, testLabel, f.id)
	if err != nil || n != 2 {
		t.Errorf("RemoveLabelled = %d, %v; want 2", n, err)
	}
	f.assertGone(t)
	if n, err := f.rt.RemoveLabelled(ctx, testLabel, other); err != nil || n != 1 {
		t.Errorf("RemoveLabelled(other) = %d, %v; want 1", n, err)
	}
}

func TestVersion(t *testing.T) {
	t.Parallel()
	f := setup(t)
	want, err := f.dc.ServerVersion(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	got, err := f.rt.Version(context.Background())
	if err != nil || got != want.Version || got == "" {
		t.Errorf("Version = %q, %v; want %q", got, err, want.Version)
	}
}

// BenchmarkRun measures one run of a trivial container, to compare with
// `docker run --rm --network none mao-testtool:latest`.
func BenchmarkRun(b *testing.B) {
	img := testenv.BuildTestImage(b)
	rt, err := dockerrt.New(dockerrt.Options{})
	if err != nil {
		b.Fatal(err)
	}
	defer rt.Close()
	spec := container.Spec{Image: img, Network: "none"}
	for b.Loop() {
		if exit, err := rt.Run(context.Background(), spec, nil); err != nil || exit.Code != 0 {
			b.Fatalf("exit %+v, %v", exit, err)
		}
	}
}

func TestCheckImage(t *testing.T) {
	t.Parallel()
	f := setup(t)
	tests := []struct {
		name, ref string
		usable    bool
	}{
		{"present", f.image, true},
		{"registry offers it", brokenRegistry(t) + "/broken:1", true}, // its manifest is served
		{"no registry", "127.0.0.1:9/missing:1", false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := f.rt.CheckImage(context.Background(), tt.ref)
			if (err == nil) != tt.usable {
				t.Errorf("CheckImage(%s) = %v, want usable %v", tt.ref, err, tt.usable)
			}
		})
	}
}
