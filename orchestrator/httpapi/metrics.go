package httpapi

import (
	"fmt"
	"net/http"

	"github.com/mao-research/mao/orchestrator/errs"
)

// metrics answers the site's metrics, or 404 when it keeps none.
func (s *Server) metrics(w http.ResponseWriter, r *http.Request) {
	if s.deps.Metrics == nil {
		s.writeError(w, r, fmt.Errorf("this site keeps no metrics: %w", errs.ErrNotFound))
		return
	}
	s.deps.Metrics.ServeHTTP(w, r)
}
