package httpapi

import (
	"errors"
	"fmt"
	"io"
	"net/http"

	"github.com/mao-research/mao/api"
	"github.com/mao-research/mao/notify"
	"github.com/mao-research/mao/toolspec"
)

// The decoders of request bodies. Each returns what the handler works
// with, or an error that errorBody maps to 400 (a *badRequest or a
// *toolspec.ValidationError): nothing a client sends can make a 500 here.
// FuzzDecode* check it.

// decodeTool reads a tool to register and validates it.
func decodeTool(r *http.Request) (toolspec.Tool, error) {
	var t toolspec.Tool
	if err := decode(r, &t); err != nil {
		return t, err
	}
	return t, withChannels(t.Validate(), t.Notify)
}

// withChannels adds to err, a tool's validation, the channel URLs that no
// service of notify's takes (toolspec checks only their shape), so that
// a tool whose notifications could never be sent is refused whole.
func withChannels(err error, urls []string) error {
	var fields []toolspec.FieldError
	for i, u := range urls {
		if toolspec.CheckChannelURL(u) != nil {
			continue // reported by Validate
		}
		if cerr := notify.CheckURL(u); cerr != nil {
			fields = append(fields, toolspec.FieldError{Field: fmt.Sprintf("notify[%d]", i), Problem: cerr.Error()})
		}
	}
	if len(fields) == 0 {
		return err
	}
	var verr *toolspec.ValidationError
	if err == nil {
		verr = &toolspec.ValidationError{Kind: "tool"}
	} else if !errors.As(err, &verr) {
		return err
	}
	verr.Fields = append(verr.Fields, fields...)
	return verr
}

// decodeDataset reads a dataset to register and validates it.
func decodeDataset(r *http.Request) (toolspec.Dataset, error) {
	var d toolspec.Dataset
	if err := decode(r, &d); err != nil {
		return d, err
	}
	return d, d.Validate()
}

// decodeNewSchedule reads a schedule to create, fills the site's defaults
// (time zone tz) and validates it. Its ID, times and creator are the
// orchestrator's to set.
func decodeNewSchedule(r *http.Request, tz string) (toolspec.Schedule, error) {
	var sch toolspec.Schedule
	if err := decode(r, &sch); err != nil {
		return sch, err
	}
	if sch.ID != "" || !sch.CreatedAt.IsZero() || !sch.UpdatedAt.IsZero() || sch.CreatedBy != "" {
		return sch, &badRequest{"id, created_at, updated_at and created_by are set by the orchestrator"}
	}
	sch.ApplyDefaults(tz)
	return sch, sch.Validate()
}

// decodeScheduleUpdate reads the new version of schedule id. What it may
// not change (tool, ID, creation) is checked against the stored schedule.
func decodeScheduleUpdate(r *http.Request, id string) (toolspec.Schedule, error) {
	var sch toolspec.Schedule
	if err := decode(r, &sch); err != nil {
		return sch, err
	}
	if sch.ID != "" && sch.ID != id {
		return sch, &badRequest{fmt.Sprintf("the body's id %q is not the path's %q", sch.ID, id)}
	}
	return sch, nil
}

// decodeOptional reads an optional body: a run request or a replay
// request (the dispatcher checks its target, retries or site); no body
// is T's zero value.
func decodeOptional[T any](r *http.Request) (T, error) {
	var req T
	if r.ContentLength == 0 {
		return req, nil
	}
	return req, decode(r, &req)
}

// decodeCredentials reads a request for a collaborator's credentials;
// the issuer checks it.
func decodeCredentials(r *http.Request) (api.CredentialsRequest, error) {
	var req api.CredentialsRequest
	return req, decode(r, &req)
}

// decodeLeave reads a request that the site leave the federation.
func decodeLeave(r *http.Request) (api.LeaveRequest, error) {
	var req api.LeaveRequest
	return req, decode(r, &req)
}

// decodeAddSite reads a request to add a site; the store checks it.
func decodeAddSite(r *http.Request) (api.AddSiteRequest, error) {
	var req api.AddSiteRequest
	return req, decode(r, &req)
}

// decodeNotifyTest reads the optional body of a notify test.
func decodeNotifyTest(r *http.Request) (api.NotifyTestRequest, error) {
	var req api.NotifyTestRequest
	if r.ContentLength == 0 {
		return req, nil
	}
	if err := decode(r, &req); err != nil || req.URL == "" {
		return req, err
	}
	if err := toolspec.CheckChannelURL(req.URL); err != nil {
		return req, &badRequest{"url: " + err.Error()}
	}
	if err := notify.CheckURL(req.URL); err != nil {
		return req, &badRequest{"url: " + err.Error()}
	}
	return req, nil
}

// decode reads one JSON object with no unknown fields.
func decode(r *http.Request, v any) error {
	body, err := io.ReadAll(io.LimitReader(r.Body, maxBody+1))
	if err != nil {
		return &badRequest{"read body: " + err.Error()}
	}
	if len(body) > maxBody {
		return &badRequest{fmt.Sprintf("body is larger than %d bytes", maxBody)}
	}
	if err := toolspec.Decode(body, true, v); err != nil {
		return &badRequest{"malformed JSON body: " + err.Error()}
	}
	return nil
}
