package httpapi

import (
	"fmt"
	"io"
	"net/http"
	"time"

	"github.com/mao-research/mao/api"
	"github.com/mao-research/mao/orchestrator/errs"
)

// proxyLogs answers a request for the log of a run held by another site by
// reading it from that site's federation API, as this site, over mutual
// TLS: the user's token stays here. Logs stay at the site that ran the
// run; they do not travel through etcd.
func (s *Server) proxyLogs(w http.ResponseWriter, r *http.Request, run api.Run) {
	if r.Header.Get(api.HopHeader) != "" {
		s.writeError(w, r, errs.New(errs.ErrConflict, fmt.Sprintf("run %s is held by site %s, and this request came from another site already: not passing it on", run.ID, run.Site)))
		return
	}
	if s.deps.LogProxy == nil {
		s.writeError(w, r, errNoCA)
		return
	}
	infos, err := s.deps.Sites.KnownSites(r.Context())
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	var owner *api.SiteInfo
	for i := range infos {
		if infos[i].Name == run.Site {
			owner = &infos[i]
		}
	}
	switch {
	case owner == nil:
		s.writeError(w, r, errs.New(errs.ErrNotFound, fmt.Sprintf("run %s ran at site %s, which has left the federation with its logs", run.ID, run.Site)))
		return
	case !owner.Live:
		s.writeError(w, r, errs.New(errs.ErrUnavailable, fmt.Sprintf("run %s ran at site %s, which is down (last seen %s); its log is there",
			run.ID, run.Site, owner.LastSeen.Format(time.RFC3339))))
		return
	}
	resp, err := s.deps.LogProxy.OpenLogs(r.Context(), *owner, run.ID, r.URL.Query())
	if err != nil {
		s.writeError(w, r, errs.New(errs.ErrUnavailable, fmt.Sprintf("site %s holds run %s's log but did not answer: %v", run.Site, run.ID, err)))
		return
	}
	defer resp.Body.Close()
	for _, h := range []string{"Content-Type", "X-Content-Type-Options"} {
		if v := resp.Header.Get(h); v != "" {
			w.Header().Set(h, v)
		}
	}
	w.WriteHeader(resp.StatusCode)
	rc := http.NewResponseController(w)
	buf := make([]byte, 32<<10)
	for {
		n, err := resp.Body.Read(buf)
		if n > 0 {
			if _, werr := w.Write(buf[:n]); werr != nil {
				return // the user went away
			}
			_ = rc.Flush() // followed logs stream as they come
		}
		if err != nil {
			if err != io.EOF {
				logError(s.log, r, err)
			}
			return
		}
	}
}
