package store

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"reflect"
	"testing"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/mao-research/mao/api"
	"github.com/mao-research/mao/orchestrator/runs"
	"github.com/mao-research/mao/toolspec"
)

// TestReplayRun checks, against etcd, the promise of a journal's replay:
// every record of a site's own run that it journaled while etcd did not
// answer ends up in etcd once, in its latest state, whatever etcd held:
//   - nothing: the record is created, with a tick's index entry;
//   - an earlier state of the run (written before etcd stopped answering):
//     it is replaced;
//   - the run settled as lost by another site meanwhile (its lease
//     expired), waiting for this site again or lost for good: the
//     journal's record wins and the run's request is deleted, so no site
//     runs it again;
//   - the same records replayed again (a crash before the journal was
//     truncated): nothing changes, no record or index entry is written
//     twice;
//   - the site not live (its lease expired, not registered again): nothing
//     is written.
func TestReplayRun(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	s, c := newStore(t)
	other := New(c, Options{Prefix: "/mao/", Timeout: 2 * time.Second}) // the site that settles runs as lost
	tool := toolspec.Tool{Name: "t", Image: "img", DataRepo: "file:///r"}
	t0 := time.Date(2026, 12, 2, 6, 0, 0, 0, time.UTC)
	apply := func(r api.Run, evs ...runs.Event) api.Run {
		t.Helper()
		for _, ev := range evs {
			var err error
			if r, err = runs.Apply(r, ev, t0.Add(time.Minute)); err != nil {
				t.Fatal(err)
			}
		}
		return r
	}
	tick := func(site string, n int, retries int) api.Run {
		sch := toolspec.Schedule{ID: "sch-" + site, Tool: "t", Retries: retries, Target: toolspec.Target{Mode: toolspec.TargetSite, Site: site}}
		return runs.NewTick(runs.Tick(sch.ID, t0.Add(time.Duration(n)*time.Minute)), sch, tool, site, api.TriggerSchedule, t0)
	}
	// lose settles r, stored at site, as lost from another store, as a
	// site that saw site's lease expire does; site registers again.
	lose := func(t *testing.T, m *Membership, r api.Run) (*Membership, api.Run) {
		t.Helper()
		revokeBehindItsBack(t, c, m)
		lost, ok, err := other.LoseRun(ctx, r.ID, r.Site, t0.Add(time.Minute))
		if err != nil || !ok {
			t.Fatalf("LoseRun: %v %v", ok, err)
		}
		return joinSite(t, s, r.Site), lost
	}
	type written struct {
		run      api.Run
		index    bool // the tick's index entry
		request  bool // the run's request
		versions int64
	}
	read := func(t *testing.T, r api.Run) written {
		t.Helper()
		resp, err := c.Txn(ctx).Then(clientv3.OpGet("/mao/runs/"+r.ID), clientv3.OpGet(s.scheduleRunKey(r)),
			clientv3.OpGet("/mao/requests/"+r.ID)).Commit()
		if err != nil {
			t.Fatal(err)
		}
		var w written
		if kvs := resp.Responses[0].GetResponseRange().Kvs; len(kvs) == 1 {
			w.versions = kvs[0].Version
			if err := json.Unmarshal(kvs[0].Value, &w.run); err != nil {
				t.Fatal(err)
			}
		}
		w.index = resp.Responses[1].GetResponseRange().Count == 1
		w.request = resp.Responses[2].GetResponseRange().Count == 1
		return w
	}

	tests := []struct {
		name string
		// before writes what etcd holds of the run before the replay and
		// returns the records journaled meanwhile, in order.
		before  func(t *testing.T, m *Membership, site string) []api.Run
		actions []runs.ReplayAction
	}{
		{"absent", func(t *testing.T, _ *Membership, site string) []api.Run {
			claimed := tick(site, 1, 0)
			running := apply(claimed, runs.Start{})
			return []api.Run{claimed, running, apply(running, runs.Succeed{})}
		}, []runs.ReplayAction{runs.ReplayCreate, runs.ReplayUpdate, runs.ReplayUpdate}},
		{"an earlier state", func(t *testing.T, _ *Membership, site string) []api.Run {
			claimed := tick(site, 2, 0)
			if ok, err := s.ClaimRun(ctx, claimed); err != nil || !ok {
				t.Fatalf("claim: %v %v", ok, err)
			}
			running := apply(claimed, runs.Start{})
			return []api.Run{running, apply(running, runs.Fail{Reason: "exit code 3"})}
		}, []runs.ReplayAction{runs.ReplayUpdate, runs.ReplayUpdate}},
		{"settled lost while running, with a retry left", func(t *testing.T, m *Membership, site string) []api.Run {
			claimed := tick(site, 3, 1)
			running := apply(claimed, runs.Start{})
			if ok, err := s.ClaimRun(ctx, claimed); err != nil || !ok {
				t.Fatalf("claim: %v %v", ok, err)
			}
			if err := s.SaveRun(ctx, running); err != nil {
				t.Fatal(err)
			}
			_, lost := lose(t, m, running)
			if lost.Site != "" || lost.Attempt != 2 {
				t.Fatalf("settled: %+v", lost)
			}
			return []api.Run{apply(running, runs.Succeed{})}
		}, []runs.ReplayAction{runs.ReplayReclaim}},
		{"settled lost for good", func(t *testing.T, m *Membership, site string) []api.Run {
			claimed := tick(site, 4, 0)
			running := apply(claimed, runs.Start{})
			if ok, err := s.ClaimRun(ctx, claimed); err != nil || !ok {
				t.Fatalf("claim: %v %v", ok, err)
			}
			if err := s.SaveRun(ctx, running); err != nil {
				t.Fatal(err)
			}
			if _, lost := lose(t, m, running); lost.State != api.StateLost {
				t.Fatalf("settled: %+v", lost)
			}
			return []api.Run{apply(running, runs.Fail{Reason: "exit code 1"})}
		}, []runs.ReplayAction{runs.ReplayReclaim}},
		{"a manual run asked for this site, settled before it started", func(t *testing.T, m *Membership, site string) []api.Run {
			target := toolspec.Target{Mode: toolspec.TargetSite, Site: site}
			asked := runs.NewManual(runs.Manual("t", t0), tool, runs.Ask{Target: &target}, t0)
			if err := s.RequestRun(ctx, asked); err != nil {
				t.Fatal(err)
			}
			claimed, ok, err := s.ClaimRequest(ctx, asked.ID, site)
			if err != nil || !ok {
				t.Fatalf("claim: %v %v", ok, err)
			}
			lose(t, m, claimed)
			running := apply(claimed, runs.Start{})
			return []api.Run{running, apply(running, runs.Succeed{})}
		}, []runs.ReplayAction{runs.ReplayReclaim, runs.ReplayUpdate}},
	}
	for i, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			site := fmt.Sprintf("r%d", i)
			m := joinSite(t, s, site)
			journal := tc.before(t, m, site)
			last := journal[len(journal)-1]
			for round, want := range [][]runs.ReplayAction{tc.actions, nil} { // then again: nothing changes
				before := read(t, last)
				for j, rec := range journal {
					got, why, err := s.ReplayRun(ctx, rec)
					if err != nil {
						t.Fatalf("round %d, record %d: %v", round+1, j+1, err)
					}
					if wantAction := runs.ReplaySkip; want != nil {
						wantAction = want[j]
						if got != wantAction {
							t.Fatalf("round %d, record %d (%s): %s (%s), want %s", round+1, j+1, rec.State, got, why, wantAction)
						}
					} else if got != wantAction {
						t.Fatalf("replayed again, record %d (%s): %s (%s), want skip", j+1, rec.State, got, why)
					}
				}
				after := read(t, last)
				if !reflect.DeepEqual(after.run, last) {
					t.Fatalf("round %d: etcd holds\n%+v\nwant the journal's last record\n%+v", round+1, after.run, last)
				}
				if after.index != (last.Schedule != "") || after.request {
					t.Fatalf("round %d: index entry %v, request %v", round+1, after.index, after.request)
				}
				if round == 1 && after.versions != before.versions {
					t.Fatalf("replayed again: the record was written again (version %d → %d)", before.versions, after.versions)
				}
			}
		})
	}

	t.Run("not live: nothing written", func(t *testing.T) {
		m := joinSite(t, s, "gone")
		revokeBehindItsBack(t, c, m)
		rec := tick("gone", 1, 0)
		if _, _, err := s.ReplayRun(ctx, rec); !errors.Is(err, ErrNotLive) {
			t.Fatalf("replay by a site whose lease expired: %v, want ErrNotLive", err)
		}
		if w := read(t, rec); w.versions != 0 || w.index {
			t.Fatalf("written: %+v", w)
		}
	})
}
