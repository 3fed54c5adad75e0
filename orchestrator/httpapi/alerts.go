package httpapi

import (
	"context"
	"fmt"
	"net/http"
	"strconv"

	"github.com/mao-research/mao/api"
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
	list(s, w, r, series, err, "series/"+name)
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
	notes, err := s.deps.Notifications.Notifications(r.Context(), q.Get("tool"), limit)
	list(s, w, r, notes, err, "notifications")
}

// testNotify sends a test message to the site's own channels (scope run)
// or to a URL in the body: that makes the orchestrator send a request to
// any address it can reach, so it needs scope admin.
func (s *Server) testNotify(w http.ResponseWriter, r *http.Request) {
	req, err := decodeNotifyTest(r)
	if err == nil && req.URL != "" {
		err = need(r, ScopeAdmin, "notify test with a URL")
	}
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	s.answer(w, r, http.StatusOK)(s.deps.NotifyTester.Test(r.Context(), req.URL))
}
