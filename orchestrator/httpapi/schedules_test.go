package httpapi

import (
	"context"
	"net/http"
	"strings"
	"testing"

	"github.com/mao-research/mao/api"
	"github.com/mao-research/mao/internal/testenv"
)

func TestScheduleEndpoints(t *testing.T) {
	e := newEnv(t, testenv.Etcd(t))
	ctx := context.Background()
	if _, err := e.client.RegisterTool(ctx, api.Tool{Name: "t1", Author: "a", Image: "busybox", DataRepo: "file:///r"}); err != nil {
		t.Fatal(err)
	}
	daily, err := e.client.CreateSchedule(ctx, api.Schedule{Tool: "t1", Spec: "daily", At: "06:30"})
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(daily.ID, "t1-daily-") || daily.TZ != "Europe/Zurich" || daily.Overlap != "forbid" ||
		daily.Catchup != "once" || daily.NextRun == nil || daily.CreatedAt.IsZero() || daily.Orphaned {
		t.Fatalf("created %+v", daily)
	}
	if daily.NextRun.In(mustZone(t, "Europe/Zurich")).Format("15:04") != "06:30" {
		t.Fatalf("next run %s is not 06:30 in Zurich", daily.NextRun)
	}
	cron, err := e.client.CreateSchedule(ctx, api.Schedule{Tool: "t1", Spec: "*/5 * * * *", TZ: "UTC", Env: map[string]string{"K": "v"}})
	if err != nil {
		t.Fatal(err)
	}

	// Bad input.
	tests := []struct {
		name    string
		call    func() error
		status  int
		mention string
	}{
		{"bad cron", func() error {
			_, err := e.client.CreateSchedule(ctx, api.Schedule{Tool: "t1", Spec: "61 * * * *"})
			return err
		},
			http.StatusBadRequest, "end of range (61) above maximum (59)"},
		{"bad time zone", func() error {
			_, err := e.client.CreateSchedule(ctx, api.Schedule{Tool: "t1", Spec: "daily", TZ: "Mars/Olympus"})
			return err
		}, http.StatusBadRequest, "unknown time zone Mars/Olympus"},
		{"unknown tool", func() error {
			_, err := e.client.CreateSchedule(ctx, api.Schedule{Tool: "nope", Spec: "daily"})
			return err
		},
			http.StatusNotFound, `no tool named "nope"`},
		{"id set by the client", func() error {
			_, err := e.client.CreateSchedule(ctx, api.Schedule{ID: "mine", Tool: "t1", Spec: "daily"})
			return err
		}, http.StatusBadRequest, "set by the orchestrator"},
		{"pause unknown", func() error { _, err := e.client.PauseSchedule(ctx, "nope"); return err }, http.StatusNotFound, "nope"},
		{"resume unknown", func() error { _, err := e.client.ResumeSchedule(ctx, "nope"); return err }, http.StatusNotFound, "nope"},
		{"remove unknown", func() error { return e.client.RemoveSchedule(ctx, "nope") }, http.StatusNotFound, "nope"},
		{"show unknown", func() error { _, err := e.client.Schedule(ctx, "nope"); return err }, http.StatusNotFound, "nope"},
		{"update to another tool", func() error {
			_, err := e.client.UpdateSchedule(ctx, api.Schedule{ID: daily.ID, Tool: "other", Spec: "daily"})
			return err
		}, http.StatusBadRequest, "cannot change"},
		{"update with a bad spec", func() error {
			_, err := e.client.UpdateSchedule(ctx, api.Schedule{ID: daily.ID, Spec: "weekly", Weekday: "someday"})
			return err
		}, http.StatusBadRequest, "weekday"},
	}
	for _, tc := range tests {
		wantStatus(t, tc.call(), tc.status, tc.mention)
	}

	// Pause, resume, update, remove.
	paused, err := e.client.PauseSchedule(ctx, daily.ID)
	if err != nil || !paused.Paused || paused.NextRun != nil || !paused.UpdatedAt.After(daily.UpdatedAt) {
		t.Fatalf("paused: %+v %v", paused, err)
	}
	resumed, err := e.client.ResumeSchedule(ctx, daily.ID)
	if err != nil || resumed.Paused || resumed.NextRun == nil {
		t.Fatalf("resumed: %+v %v", resumed, err)
	}
	weekly, err := e.client.UpdateSchedule(ctx, api.Schedule{ID: daily.ID, Spec: "weekly", Weekday: "fri", At: "17:00", TZ: "UTC"})
	if err != nil || weekly.Spec != "weekly" || weekly.Tool != "t1" || !weekly.CreatedAt.Equal(daily.CreatedAt) || weekly.NextRun.Weekday().String() != "Friday" {
		t.Fatalf("updated: %+v %v", weekly, err)
	}
	list, err := e.client.Schedules(ctx, "t1")
	if err != nil || len(list.Items) != 2 {
		t.Fatalf("list: %v %v", list, err)
	}

	// A schedule whose tool is removed is kept, marked orphaned.
	if err := e.client.RemoveTool(ctx, "t1"); err != nil {
		t.Fatal(err)
	}
	orphan, err := e.client.Schedule(ctx, cron.ID)
	if err != nil || !orphan.Orphaned {
		t.Fatalf("after the tool's removal: %+v %v", orphan, err)
	}
	if err := e.client.RemoveSchedule(ctx, cron.ID); err != nil {
		t.Fatal(err)
	}
	if list, _ := e.client.Schedules(ctx, ""); len(list.Items) != 1 || list.Items[0].ID != daily.ID || !list.Items[0].Orphaned {
		t.Fatalf("after remove: %+v", list)
	}
}
