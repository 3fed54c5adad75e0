package httpapi

import (
	"context"
	"fmt"
	"net/http"
	"strconv"

	"github.com/mao-research/mao/api"
	"github.com/mao-research/mao/notify"
	"github.com/mao-research/mao/toolspec"
)

// SeriesReader reads the spike detector's series.
type SeriesReader interface {
	SeriesOf(ctx context.Context, tool, site, metric string) ([]api.Series, error)
}

// Notifications reads the recorded outcomes of notifications.
type Notifications interface {
	Notifications(ctx context.Context, tool string, limit int) ([]api.Notification, error)
}

// NotifyTester sends a test message, to url or to the site's channels.
type NotifyTester interface {
	Test(ctx context.Context, url string) ([]api.Notification, error)
}

func (s *Server) listSeries(w http.ResponseWriter, r *http.Request) {
	name := r.PathValue("name")
	if _, err := s.deps.Tools.Tool(r.Context(), name); err != nil {
		s.writeError(w, r, err)
		return
	}
	q := r.URL.Query()
	series, err := s.deps.Series.SeriesOf(r.Context(), name, q.Get("site"), q.Get("metric"))
	if series == nil {
		series = []api.Series{}
	}
	s.answer(w, r, http.StatusOK)(series, err)
}

func (s *Server) listNotifications(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	limit := 0
	if v := q.Get("limit"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 0 {
			s.writeError(w, r, &badRequest{fmt.Sprintf("limit: %q is not a number of notifications", v)})
			return
		}
		limit = n
	}
	list, err := s.deps.Notifications.Notifications(r.Context(), q.Get("tool"), limit)
	if list == nil {
		list = []api.Notification{}
	}
	s.answer(w, r, http.StatusOK)(list, err)
}

func (s *Server) testNotify(w http.ResponseWriter, r *http.Request) {
	var req api.NotifyTestRequest
	if r.ContentLength != 0 {
		if err := decode(r, &req); err != nil {
			s.writeError(w, r, err)
			return
		}
	}
	s.answer(w, r, http.StatusOK)(s.deps.NotifyTester.Test(r.Context(), req.URL))
}

// redacted is a tool as the API shows it: its channels' secrets hidden.
func redacted(t toolspec.Tool) toolspec.Tool {
	if len(t.Notify) > 0 {
		urls := make([]string, len(t.Notify))
		for i, u := range t.Notify {
			urls[i] = notify.Redact(u)
		}
		t.Notify = urls
	}
	return t
}
