package offline

import (
	"context"
	"encoding/json"
	"errors"
	"log/slog"
	"slices"
	"sync"
	"testing"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/mao-research/mao/api"
	"github.com/mao-research/mao/detector"
	"github.com/mao-research/mao/internal/testenv"
	"github.com/mao-research/mao/orchestrator/errs"
	"github.com/mao-research/mao/orchestrator/runs"
	"github.com/mao-research/mao/orchestrator/store"
	"github.com/mao-research/mao/toolspec"
)

// endings records the runs whose ends Work passes on.
type endings struct {
	mu    sync.Mutex
	ended []string
}

func (e *endings) Detect(context.Context, api.Run, toolspec.Tool, string) []detector.Verdict {
	return []detector.Verdict{{Metric: "control", Status: detector.StatusOK}}
}

func (e *endings) Ended(run api.Run) {
	e.mu.Lock()
	defer e.mu.Unlock()
	e.ended = append(e.ended, run.ID)
}

func (e *endings) list() []string {
	e.mu.Lock()
	defer e.mu.Unlock()
	return slices.Clone(e.ended)
}

// TestWorkWithoutEtcd checks, with a real etcd that stops and starts
// again, what a site promises while etcd does not answer it:
//   - the first request etcd does not answer takes it offline; the ticks
//     and records of its own runs then go to its journal at once, each
//     tick claimed once; reads of those runs come from the journal;
//   - what another site could take (an --any tick) is not claimed;
//   - the runs it carries are not fenced (Carries), their requests are not
//     claimed, and a successful one's detector series is left alone;
//   - once etcd answers, the journal is replayed: every record is in etcd
//     once, in its last state, with its tick's index entry, the site is
//     online and its journal empty, and the notifications of the runs that
//     ended offline follow, once each.
func TestWorkWithoutEtcd(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	cluster := testenv.EtcdCluster(t, 1)
	c := cluster.Client(t)
	log := slog.New(slog.DiscardHandler)
	st := store.New(c, store.Options{Prefix: "/mao/", Timeout: time.Second})
	member, err := st.Join(ctx, api.Site{Name: "a"}, time.Minute, log)
	if err != nil {
		t.Fatal(err)
	}
	j, _, err := Open(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	defer j.Close()
	outputs := &endings{}
	w := New(j, Deps{Records: st, Claims: st, History: st, Replayer: st, Lease: member, Outputs: outputs},
		Options{Site: api.Site{Name: "a"}, Log: log, Retry: 100 * time.Millisecond})
	serveCtx, stop := context.WithCancel(ctx)
	served := make(chan struct{})
	go func() { defer close(served); w.Serve(serveCtx) }()
	defer func() { stop(); <-served }()

	tool := toolspec.Tool{Name: "t", Image: "img", DataRepo: "file:///r"}
	own := toolspec.Schedule{ID: "own", Tool: "t", Target: toolspec.Target{Mode: toolspec.TargetSite, Site: "a"}}
	anywhere := toolspec.Schedule{ID: "anywhere", Tool: "t", Target: toolspec.Target{Mode: toolspec.TargetAny}}
	t0 := time.Now().UTC().Truncate(time.Second)
	tick := func(sch toolspec.Schedule, n int) api.Run {
		return runs.NewTick(runs.Tick(sch.ID, t0.Add(time.Duration(n)*5*time.Second)), sch, tool, "a", api.TriggerSchedule, t0)
	}
	apply := func(r api.Run, ev runs.Event) api.Run {
		t.Helper()
		out, err := runs.Apply(r, ev, time.Now())
		if err != nil {
			t.Fatal(err)
		}
		return out
	}

	tick1 := tick(own, 1)
	if ok, err := w.ClaimRun(ctx, tick1); err != nil || !ok {
		t.Fatalf("claim online: %v %v", ok, err)
	}
	cluster.Stop(0)

	tick2 := tick(own, 2)
	if ok, err := w.ClaimRun(ctx, tick2); err != nil || !ok {
		t.Fatalf("claim of an own tick without etcd: %v %v, want it journaled", ok, err)
	}
	if offline, n := w.Status(); !offline || n != 1 {
		t.Fatalf("status after the first claim etcd did not answer: offline %v, %d journaled", offline, n)
	}
	if ok, err := w.ClaimRun(ctx, tick2); err != nil || ok {
		t.Fatalf("second claim of the same tick offline: %v %v, want false", ok, err)
	}
	if _, err := w.ClaimRun(ctx, tick(anywhere, 2)); !errors.Is(err, errs.ErrUnavailable) {
		t.Fatalf("claim of an --any tick offline: %v, want ErrUnavailable", err)
	}
	running1, running2 := apply(tick1, runs.Start{}), apply(tick2, runs.Start{})
	done2 := apply(running2, runs.Succeed{})
	for _, r := range []api.Run{running1, running2, done2} {
		if err := w.SaveRun(ctx, r); err != nil {
			t.Fatalf("save %s %s offline: %v", r.ID, r.State, err)
		}
	}
	w.Ended(done2) // as the runner tells it: deferred to the replay
	if got, err := w.Run(ctx, tick2.ID); err != nil || got.State != api.StateSucceeded {
		t.Fatalf("read of a journaled run offline: %s %v", got.State, err)
	}
	if !w.Carries(running1) || !w.Carries(done2) || w.Carries(tick(anywhere, 3)) {
		t.Fatal("Carries: want the own runs, not the --any one")
	}
	if verdicts := w.Detect(ctx, done2, tool, t.TempDir()); len(verdicts) != 1 || verdicts[0].Status != detector.StatusNoData {
		t.Fatalf("detector of a carried run: %+v, want one no-data verdict", verdicts)
	}
	if _, ok, err := w.ClaimRequest(ctx, tick1.ID, "a"); ok || err != nil {
		t.Fatalf("claim of a carried run's request: %v %v, want none", ok, err)
	}
	if got := outputs.list(); len(got) != 0 {
		t.Fatalf("notified offline: %v", got)
	}
	if offline, n := w.Status(); !offline || n != 4 {
		t.Fatalf("status offline: %v, %d journaled; want 4", offline, n)
	}

	changed := w.Changed()
	cluster.Start(0)
	select {
	case <-changed:
	case <-time.After(30 * time.Second):
		t.Fatal("not online 30s after etcd started again")
	}
	if offline, n := w.Status(); offline || n != 0 {
		t.Fatalf("status after the replay: offline %v, %d journaled", offline, n)
	}
	for _, want := range []api.Run{running1, done2} {
		resp, err := c.Txn(ctx).Then(clientv3.OpGet("/mao/runs/"+want.ID),
			clientv3.OpGet("/mao/schedule-runs/own/", clientv3.WithPrefix(), clientv3.WithCountOnly())).Commit()
		if err != nil {
			t.Fatal(err)
		}
		var got api.Run
		kvs := resp.Responses[0].GetResponseRange().Kvs
		if len(kvs) != 1 || json.Unmarshal(kvs[0].Value, &got) != nil || got.State != want.State || got.Attempt != 1 {
			t.Fatalf("etcd's record of %s: %+v, want %s", want.ID, got, want.State)
		}
		if n := resp.Responses[1].GetResponseRange().Count; n != 2 {
			t.Fatalf("%d index entries of the schedule, want 2", n)
		}
	}
	if got := outputs.list(); !slices.Equal(got, []string{tick2.ID}) {
		t.Fatalf("notified after the replay: %v, want %s once", got, tick2.ID)
	}
	// Online again: a run still carried has its records journaled and
	// replayed at once, until it ends; a new claim goes to etcd.
	watch := c.Watch(ctx, "/mao/runs/"+tick1.ID)
	if err := w.SaveRun(ctx, apply(running1, runs.Succeed{})); err != nil {
		t.Fatal(err)
	}
	select {
	case wr := <-watch:
		var got api.Run
		if len(wr.Events) != 1 || json.Unmarshal(wr.Events[0].Kv.Value, &got) != nil || got.State != api.StateSucceeded {
			t.Fatalf("the carried run's last record online: %+v", wr.Events)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("the carried run's last record did not reach etcd")
	}
	tick3 := tick(own, 3)
	if ok, err := w.ClaimRun(ctx, tick3); err != nil || !ok {
		t.Fatalf("claim online: %v %v", ok, err)
	}
	if resp, err := c.Get(ctx, "/mao/runs/"+tick3.ID); err != nil || len(resp.Kvs) != 1 {
		t.Fatalf("a claim online is not in etcd: %v", err)
	}
}
