package httpapi

import (
	"errors"
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/mao-research/mao/api"
	"github.com/mao-research/mao/orchestrator/errs"
	"github.com/mao-research/mao/orchestrator/runlog"
	"github.com/mao-research/mao/toolspec"
)

// TestErrorBody checks the one mapping of error kinds to HTTP codes.
func TestErrorBody(t *testing.T) {
	tests := []struct {
		err    error
		status int
		code   string
	}{
		{&toolspec.ValidationError{Kind: "tool", Fields: []toolspec.FieldError{{Field: "name", Problem: "is required"}}},
			http.StatusBadRequest, api.CodeInvalid},
		{&badRequest{"bad"}, http.StatusBadRequest, api.CodeInvalid},
		{errUnauthorized, http.StatusUnauthorized, api.CodeUnauthorized},
		{errs.New(errs.ErrForbidden, "needs scope admin"), http.StatusForbidden, api.CodeForbidden},
		{&unsupported{"needs JSON"}, http.StatusUnsupportedMediaType, api.CodeUnsupported},
		{&misdirected{"evil.example"}, http.StatusMisdirectedRequest, api.CodeMisdirected},
		{errs.New(errs.ErrNotFound, "no tool"), http.StatusNotFound, api.CodeNotFound},
		{errs.New(errs.ErrExists, "taken"), http.StatusConflict, api.CodeConflict},
		{errs.New(errs.ErrInUse, "used"), http.StatusConflict, api.CodeConflict},
		{errs.New(errs.ErrChanged, "changed"), http.StatusConflict, api.CodeConflict},
		{errs.New(errs.ErrConflict, "never met"), http.StatusConflict, api.CodeConflict},
		{fmt.Errorf("wrapped: %w", errs.New(errs.ErrUnavailable, "etcd")), http.StatusServiceUnavailable, api.CodeUnavailable},
		{errors.New("boom"), http.StatusInternalServerError, api.CodeInternal},
	}
	for _, tc := range tests {
		status, body := ErrorBody(tc.err)
		if status != tc.status || body.Code != tc.code {
			t.Errorf("%v: %d %s, want %d %s", tc.err, status, body.Code, tc.status, tc.code)
		}
		if status != http.StatusInternalServerError && body.Message == "" {
			t.Errorf("%v: no message", tc.err)
		}
	}
}

// TestWhyNoLog checks what a 404 for a missing log says about the run: a
// run nobody has taken, one that ended without starting (a missed tick, a
// skipped share of an --all run) and one that ran elsewhere read apart.
func TestWhyNoLog(t *testing.T) {
	started := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	tests := []struct {
		run  api.Run
		want string
	}{
		{api.Run{ID: "r1", State: api.StatePending}, "run r1 is pending: no site has taken it yet"},
		{api.Run{ID: "r2", State: api.StateMissed, Site: "lab-a"}, "run r2 was missed at site lab-a and never started"},
		{api.Run{ID: "r3", State: api.StateSkipped, Site: "lab-b"}, "run r3 was skipped at site lab-b and never started"},
		{api.Run{ID: "r4", State: api.StateSucceeded, Site: "lab-b", StartedAt: &started}, "run r4 ran at site lab-b"},
		{api.Run{ID: "r5", State: api.StateRunning, Site: "lab-b"}, "run r5 ran at site lab-b"},
	}
	for _, tc := range tests {
		err := whyNoLog(runlog.ErrNoLog, tc.run)
		if !errors.Is(err, runlog.ErrNoLog) || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: %v; want it to say %q", tc.run.ID, err, tc.want)
		}
		if status, _ := ErrorBody(err); status != http.StatusNotFound {
			t.Errorf("%s: status %d, want 404", tc.run.ID, status)
		}
	}
}
