package httpapi

import (
	"bytes"
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/mao-research/mao/api"
	"github.com/mao-research/mao/toolspec"
)

// The fuzz tests of every request body decoder: whatever a client sends,
// a decoder returns an error that is a 400, or a value that the handler
// can trust. Their seed corpora are in testdata/fuzz/<name>, which `go
// test` runs; `go test -fuzz=FuzzDecodeTool ./orchestrator/httpapi`
// explores.

// fuzzDecoder fuzzes decode with request bodies; valid checks what it
// returns without error.
func fuzzDecoder[T any](f *testing.F, decode func(*http.Request) (T, error), valid func(*testing.T, T)) {
	f.Fuzz(func(t *testing.T, body []byte) {
		r := httptest.NewRequest(http.MethodPost, "/", bytes.NewReader(body))
		v, err := decode(r)
		if err != nil {
			if status, answer := ErrorBody(err); status != http.StatusBadRequest || answer.Message == "" {
				t.Fatalf("%q: %d %+v, want 400 with a message", body, status, answer)
			}
			return
		}
		if valid != nil {
			valid(t, v)
		}
	})
}

func FuzzDecodeTool(f *testing.F) {
	fuzzDecoder(f, decodeTool, func(t *testing.T, tool toolspec.Tool) {
		if err := tool.Validate(); err != nil {
			t.Fatalf("decoded an invalid tool: %v", err)
		}
		if toolspec.RedactURL(tool.DataRepo) != tool.DataRepo || toolspec.RedactURL(tool.CodeRepo) != tool.CodeRepo {
			t.Fatalf("decoded a tool with credentials: %q %q", tool.DataRepo, tool.CodeRepo)
		}
	})
}

func FuzzDecodeDataset(f *testing.F) {
	fuzzDecoder(f, decodeDataset, func(t *testing.T, d toolspec.Dataset) {
		if err := d.Validate(); err != nil || toolspec.RedactURL(d.URL) != d.URL {
			t.Fatalf("decoded an invalid dataset or one with credentials: %+v %v", d, err)
		}
	})
}

func FuzzDecodeNewSchedule(f *testing.F) {
	fuzzDecoder(f, func(r *http.Request) (toolspec.Schedule, error) { return decodeNewSchedule(r, "Europe/Zurich") },
		func(t *testing.T, s toolspec.Schedule) {
			if err := s.Validate(); err != nil {
				t.Fatalf("decoded an invalid schedule: %v", err)
			}
			if s.ID != "" || !s.CreatedAt.IsZero() || !s.UpdatedAt.IsZero() || s.CreatedBy != "" || s.TZ == "" {
				t.Fatalf("the client set what the orchestrator sets: %+v", s)
			}
		})
}

func FuzzDecodeScheduleUpdate(f *testing.F) {
	fuzzDecoder(f, func(r *http.Request) (toolspec.Schedule, error) { return decodeScheduleUpdate(r, "t1-daily-0a0b") },
		func(t *testing.T, s toolspec.Schedule) {
			if s.ID != "" && s.ID != "t1-daily-0a0b" {
				t.Fatalf("an update of another schedule: %q", s.ID)
			}
		})
}

func FuzzDecodeRunRequest(f *testing.F) {
	fuzzDecoder(f, decodeOptional[api.RunRequest], func(t *testing.T, req api.RunRequest) {
		if req.Target != nil {
			_ = req.Target.Validate() // may refuse, never panic
		}
	})
}

func FuzzDecodeAddSite(f *testing.F) {
	fuzzDecoder[api.AddSiteRequest](f, decodeAddSite, nil)
}

func FuzzDecodeCredentials(f *testing.F) {
	fuzzDecoder[api.CredentialsRequest](f, decodeCredentials, nil)
}

func FuzzDecodeNotifyTest(f *testing.F) {
	fuzzDecoder[api.NotifyTestRequest](f, decodeNotifyTest, nil)
}

func FuzzDecodeLeave(f *testing.F) {
	fuzzDecoder[api.LeaveRequest](f, decodeLeave, nil)
}
