package httpapi

import (
	"errors"
	"fmt"
	"net/http"
	"testing"

	"github.com/mao-research/mao/api"
	"github.com/mao-research/mao/orchestrator/errs"
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
		status, body := errorBody(tc.err)
		if status != tc.status || body.Code != tc.code {
			t.Errorf("%v: %d %s, want %d %s", tc.err, status, body.Code, tc.status, tc.code)
		}
		if status != http.StatusInternalServerError && body.Message == "" {
			t.Errorf("%v: no message", tc.err)
		}
	}
}
