package httpapi

import (
	"fmt"
	"net/http"
	"net/http/httputil"
	"net/url"

	"github.com/mao-research/mao/api"
	"github.com/mao-research/mao/orchestrator/errs"
)

// proxyLogs answers a request for the log of a run held by another site by
// passing it to that site's API, as it is (the caller's token included, so
// tokens must be valid at every site). Logs stay at the site that ran the
// run; they do not travel through etcd.
func (s *Server) proxyLogs(w http.ResponseWriter, r *http.Request, run api.Run) {
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
			run.ID, run.Site, owner.LastSeen.Format("2006-01-02T15:04:05Z07:00"))))
		return
	}
	target, err := url.Parse(owner.APIAddr)
	if err != nil || target.Host == "" {
		s.writeError(w, r, fmt.Errorf("site %s publishes an API address that is not a URL: %q", run.Site, owner.APIAddr))
		return
	}
	proxy := &httputil.ReverseProxy{
		Rewrite: func(pr *httputil.ProxyRequest) {
			pr.SetURL(target)
			pr.Out.Host = target.Host
		},
		FlushInterval: -1, // followed logs stream as they come
		ErrorHandler: func(w http.ResponseWriter, r *http.Request, err error) {
			s.writeError(w, r, errs.New(errs.ErrUnavailable, fmt.Sprintf("site %s (%s) holds run %s's log but did not answer: %v",
				run.Site, owner.APIAddr, run.ID, err)))
		},
	}
	proxy.ServeHTTP(w, r)
}
