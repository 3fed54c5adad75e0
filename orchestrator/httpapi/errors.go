package httpapi

import (
	"encoding/json"
	"errors"
	"log/slog"
	"net/http"

	"github.com/mao-research/mao/api"
	"github.com/mao-research/mao/orchestrator/errs"
	"github.com/mao-research/mao/toolspec"
)

// badRequest is a request the API cannot decode.
type badRequest struct{ msg string }

func (e *badRequest) Error() string { return e.msg }

// unsupported is a write without Content-Type: application/json.
type unsupported struct{ msg string }

func (e *unsupported) Error() string { return e.msg }

// misdirected is a request whose Host header names another host.
type misdirected struct{ msg string }

func (e *misdirected) Error() string { return e.msg }

// errUnauthorized is a request without a valid bearer token.
var errUnauthorized = errors.New("a valid bearer token is required (Authorization: Bearer <token>)")

// ErrorBody maps an error to its HTTP status and JSON body. It is the only
// place where errors become status codes: the federation API (peer) is
// given it too.
func ErrorBody(err error) (int, api.ErrorBody) {
	var invalid *toolspec.ValidationError
	var bad *badRequest
	var media *unsupported
	var host *misdirected
	switch {
	case errors.As(err, &invalid):
		details := make([]string, len(invalid.Fields))
		for i, f := range invalid.Fields {
			details[i] = f.Error()
		}
		return http.StatusBadRequest, api.ErrorBody{Code: api.CodeInvalid, Message: "invalid " + invalid.Kind, Details: details}
	case errors.As(err, &bad):
		return http.StatusBadRequest, api.ErrorBody{Code: api.CodeInvalid, Message: bad.msg}
	case errors.As(err, &media):
		return http.StatusUnsupportedMediaType, api.ErrorBody{Code: api.CodeUnsupported, Message: media.msg}
	case errors.As(err, &host):
		return http.StatusMisdirectedRequest, api.ErrorBody{Code: api.CodeMisdirected, Message: host.msg}
	case errors.Is(err, errs.ErrInvalid):
		return http.StatusBadRequest, api.ErrorBody{Code: api.CodeInvalid, Message: err.Error()}
	case errors.Is(err, errUnauthorized):
		return http.StatusUnauthorized, api.ErrorBody{Code: api.CodeUnauthorized, Message: err.Error()}
	case errors.Is(err, errs.ErrForbidden):
		return http.StatusForbidden, api.ErrorBody{Code: api.CodeForbidden, Message: err.Error()}
	case errors.Is(err, errs.ErrNotFound):
		return http.StatusNotFound, api.ErrorBody{Code: api.CodeNotFound, Message: err.Error()}
	case errors.Is(err, errs.ErrExists), errors.Is(err, errs.ErrInUse), errors.Is(err, errs.ErrChanged), errors.Is(err, errs.ErrConflict):
		return http.StatusConflict, api.ErrorBody{Code: api.CodeConflict, Message: err.Error()}
	case errors.Is(err, errs.ErrFull):
		return http.StatusInsufficientStorage, api.ErrorBody{Code: api.CodeFull, Message: err.Error()}
	case errors.Is(err, errs.ErrUnavailable):
		return http.StatusServiceUnavailable, api.ErrorBody{Code: api.CodeUnavailable, Message: err.Error()}
	}
	return http.StatusInternalServerError, api.ErrorBody{Code: api.CodeInternal, Message: "internal error; see the orchestrator's log"}
}

// writeError answers with err's status and body; errors without a known
// meaning are logged, since their text is not sent.
func (s *Server) writeError(w http.ResponseWriter, r *http.Request, err error) {
	status, body := ErrorBody(err)
	if status == http.StatusInternalServerError {
		s.log.Error("request failed", "method", r.Method, "path", r.URL.Path, "err", err)
	}
	if status == http.StatusUnauthorized {
		w.Header().Set("WWW-Authenticate", `Bearer realm="mao"`)
	}
	writeJSON(w, status, body)
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	// Compact: a list of thousands of records is a third smaller, and
	// quicker to write and to read; maoctl -o json, or jq, indents.
	_ = json.NewEncoder(w).Encode(v) // the client went away; nothing to do
}

// logError is for errors after the answer's header was sent.
func logError(log *slog.Logger, r *http.Request, err error) {
	log.Warn("request ended early", "method", r.Method, "path", r.URL.Path, "err", err)
}
