package httpapi

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"strings"

	"github.com/mao-research/mao/api"
	"github.com/mao-research/mao/internal/randid"
	"github.com/mao-research/mao/orchestrator/errs"
	"github.com/mao-research/mao/toolspec"
)

// ScheduleReader reads schedules.
type ScheduleReader interface {
	Schedule(ctx context.Context, id string) (toolspec.Schedule, error)
	Schedules(ctx context.Context) ([]toolspec.Schedule, int64, error)
}

// ScheduleWriter adds and removes schedules.
type ScheduleWriter interface {
	CreateSchedule(ctx context.Context, s toolspec.Schedule) error
	DeleteSchedule(ctx context.Context, id string) error
}

// ScheduleEditor changes a schedule unless it changed since it was read.
type ScheduleEditor interface {
	ScheduleRevision(ctx context.Context, id string) (toolspec.Schedule, int64, error)
	UpdateSchedule(ctx context.Context, s toolspec.Schedule, rev int64) error
}

// ScheduleRuns reads the runs of schedules.
type ScheduleRuns interface {
	LastScheduledRun(ctx context.Context, schedule, site string) (*api.Run, error)
	ScheduledRuns(ctx context.Context, schedule string) ([]api.Run, error)
}

func (s *Server) listSchedules(w http.ResponseWriter, r *http.Request) {
	ctx := r.Context()
	schedules, _, err := s.deps.Schedules.Schedules(ctx)
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	tools, err := s.deps.Tools.Tools(ctx)
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	registered := make(map[string]bool, len(tools))
	for _, t := range tools {
		registered[t.Name] = true
	}
	filter := r.URL.Query().Get("tool")
	schedules = slices.DeleteFunc(schedules, func(sch toolspec.Schedule) bool { return filter != "" && sch.Tool != filter })
	// A page first: each schedule's info reads its last tick.
	schedules, next, err := namePage(r.URL.Query(), schedules, func(sch toolspec.Schedule) string { return sch.ID })
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	out := make([]api.ScheduleInfo, 0, len(schedules))
	for _, sch := range schedules {
		info, err := s.info(ctx, sch, registered[sch.Tool])
		if err != nil {
			s.writeError(w, r, err)
			return
		}
		out = append(out, info)
	}
	s.answer(w, r, http.StatusOK)(api.List[api.ScheduleInfo]{Items: shown(out).([]api.ScheduleInfo),
		Invalid: s.deps.Invalid.InvalidRecords("schedules"), Continue: next}, nil)
}

func (s *Server) getSchedule(w http.ResponseWriter, r *http.Request) {
	sch, err := s.deps.Schedules.Schedule(r.Context(), r.PathValue("id"))
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	s.answerInfo(w, r, http.StatusOK, sch)
}

// createSchedule stores a new schedule with an ID of the orchestrator's
// choosing, the site's defaults and the caller's token name.
func (s *Server) createSchedule(w http.ResponseWriter, r *http.Request) {
	sch, err := decodeNewSchedule(r, s.opts.Timezone)
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	now := s.opts.Now().UTC()
	sch.CreatedAt, sch.UpdatedAt, sch.CreatedBy = now, now, callerOf(r).name
	for range 3 { // a random ID can collide, if rarely
		sch.ID = fmt.Sprintf("%s-%s-%s", sch.Tool, scheduleKind(sch.Spec), randid.Hex(2))
		if err = s.deps.ScheduleEdits.CreateSchedule(r.Context(), sch); !errors.Is(err, errs.ErrExists) {
			break
		}
	}
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	w.Header().Set("Location", r.URL.Path+"/"+sch.ID)
	s.answerInfo(w, r, http.StatusCreated, sch)
}

// updateSchedule replaces a schedule's timing and options. Its ID, tool,
// creation time and pause stay (pause and resume change that); ticks before
// the update are not caught up.
func (s *Server) updateSchedule(w http.ResponseWriter, r *http.Request) {
	id := r.PathValue("id")
	sch, err := decodeScheduleUpdate(r, id)
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	s.editSchedule(w, r, id, func(old *toolspec.Schedule) error {
		if sch.Tool != "" && sch.Tool != old.Tool {
			return &badRequest{fmt.Sprintf("a schedule's tool cannot change (it is %s); create a new schedule", old.Tool)}
		}
		edited := sch
		edited.ID, edited.Tool, edited.CreatedAt, edited.CreatedBy, edited.Paused = old.ID, old.Tool, old.CreatedAt, old.CreatedBy, old.Paused
		edited.ApplyDefaults(s.opts.Timezone)
		*old = edited
		return nil
	})
}

func (s *Server) pauseSchedule(w http.ResponseWriter, r *http.Request) {
	s.editSchedule(w, r, r.PathValue("id"), func(sch *toolspec.Schedule) error { sch.Paused = true; return nil })
}

func (s *Server) resumeSchedule(w http.ResponseWriter, r *http.Request) {
	s.editSchedule(w, r, r.PathValue("id"), func(sch *toolspec.Schedule) error { sch.Paused = false; return nil })
}

// editSchedule reads a schedule, applies edit, validates and stores it
// with a new UpdatedAt, and answers with it. The store refuses the write if
// the schedule changed since it was read (a pause and an update at once);
// then the edit is applied again to the new version.
func (s *Server) editSchedule(w http.ResponseWriter, r *http.Request, id string, edit func(*toolspec.Schedule) error) {
	var sch toolspec.Schedule
	var err error
	for range 5 {
		var rev int64
		sch, rev, err = s.deps.ScheduleEditor.ScheduleRevision(r.Context(), id)
		if err == nil {
			err = edit(&sch)
		}
		if err == nil {
			err = sch.Validate()
		}
		if err == nil {
			sch.UpdatedAt = s.opts.Now().UTC()
			err = s.deps.ScheduleEditor.UpdateSchedule(r.Context(), sch, rev)
		}
		if !errors.Is(err, errs.ErrChanged) {
			break
		}
	}
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	s.answerInfo(w, r, http.StatusOK, sch)
}

func (s *Server) deleteSchedule(w http.ResponseWriter, r *http.Request) {
	s.noContent(w, r, s.deps.ScheduleEdits.DeleteSchedule(r.Context(), r.PathValue("id")))
}

// answerInfo answers with a schedule and what is known of it.
func (s *Server) answerInfo(w http.ResponseWriter, r *http.Request, status int, sch toolspec.Schedule) {
	_, err := s.deps.Tools.Tool(r.Context(), sch.Tool)
	if err != nil && !errors.Is(err, errs.ErrNotFound) {
		s.writeError(w, r, err)
		return
	}
	s.answer(w, r, status)(s.info(r.Context(), sch, err == nil))
}

// info adds a schedule's next tick, last run and whether it is orphaned.
func (s *Server) info(ctx context.Context, sch toolspec.Schedule, toolRegistered bool) (api.ScheduleInfo, error) {
	info := api.ScheduleInfo{Schedule: sch, Orphaned: !toolRegistered}
	if timing, err := sch.Timing(); err == nil && !sch.Paused {
		next := timing.Next(s.opts.Now())
		info.NextRun = &next
	}
	last, err := s.deps.ScheduleRuns.LastScheduledRun(ctx, sch.ID, "")
	info.LastRun = last
	return info, err
}

// scheduleKind names a schedule's spec in its ID.
func scheduleKind(spec string) string {
	switch spec = strings.TrimSpace(spec); {
	case spec == "daily" || spec == "weekly" || spec == "monthly":
		return spec
	case strings.HasPrefix(spec, "@every"):
		return "every"
	}
	return "cron"
}
