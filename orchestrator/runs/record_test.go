package runs

import (
	"fmt"
	"testing"
	"time"

	"github.com/mao-research/mao/api"
)

// TestExpired checks which runs asked for by hand retention prunes: per
// tool at this site, the ended ones beyond the newest keep, and those that
// ended before the cut-off; never a run that has not ended, a tick, or
// another site's run.
func TestExpired(t *testing.T) {
	at := func(min int) time.Time { return time.Unix(1700000000, 0).Add(time.Duration(min) * time.Minute) }
	run := func(id, tool, site, trigger string, state api.RunState, created int) api.Run {
		fin := at(created + 1)
		return api.Run{ID: id, Tool: tool, Site: site, Trigger: trigger, State: state, CreatedAt: at(created), FinishedAt: &fin}
	}
	list := []api.Run{
		run("a1", "a", "s1", api.TriggerManual, api.StateSucceeded, 1),
		run("a2", "a", "s1", api.TriggerManual, api.StateFailed, 2),
		run("a3", "a", "s1", api.TriggerReplay, api.StateSucceeded, 3),
		run("a4", "a", "s1", api.TriggerManual, api.StateRunning, 0),     // not ended: kept, not counted
		run("a5", "a", "s2", api.TriggerManual, api.StateSucceeded, 0),   // another site's
		run("a6", "a", "s1", api.TriggerSchedule, api.StateSucceeded, 0), // a tick: its schedule bounds it
		run("b1", "b", "s1", api.TriggerManual, api.StateSucceeded, 100),
	}
	pending := run("a0", "a", "s1", api.TriggerManual, api.StateSucceeded, 0) // its push still on its way: kept
	pending.Push = &api.Push{State: api.PushFailed}
	list = append(list, pending)
	tests := []struct {
		name   string
		keep   int
		before time.Time
		want   []string
	}{
		{"keep 2 per tool", 2, time.Time{}, []string{"a1"}},
		{"keep 1 per tool", 1, time.Time{}, []string{"a2", "a1"}},
		{"keep plenty", 100, time.Time{}, nil},
		{"an age limit", 100, at(4), []string{"a2", "a1"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if got := Expired(list, "s1", tc.keep, tc.before); fmt.Sprint(got) != fmt.Sprint(tc.want) {
				t.Errorf("Expired = %v, want %v", got, tc.want)
			}
		})
	}
}
