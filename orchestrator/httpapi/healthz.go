package httpapi

import (
	"context"
	"net/http"
	"sync"
	"time"
)

// healthzEvery is how long GET /healthz answers the last check: it needs
// no token, so that monitors can ask, and so anyone who reaches the API
// can; they get at most one etcd and one Docker check per period.
const healthzEvery = time.Second

// healthCache holds the last answer of GET /healthz.
type healthCache struct {
	mu     sync.Mutex
	at     time.Time
	status string
}

// healthz answers {"status":"ok"} with 200, or {"status":"degraded"} with
// 503 when the site is degraded (etcd or Docker does not answer, or it has
// met invalid records), and nothing else: the details
// (GET /api/v1/health) need a token. 503 lets a load balancer or monitor
// that reads only the code see a degraded site; a liveness probe should
// accept any answer, since a restart does not bring etcd back and stops
// the runs under way.
func (s *Server) healthz(w http.ResponseWriter, r *http.Request) {
	status := s.probe.check(r.Context(), s.opts.Now, func(ctx context.Context) string { return s.deps.Health.Check(ctx).Status })
	code := http.StatusOK
	if status != "ok" {
		status, code = "degraded", http.StatusServiceUnavailable
	}
	writeJSON(w, code, struct {
		Status string `json:"status"`
	}{status})
}

// check returns the status of a check made less than healthzEvery ago, or
// checks again. One check runs at a time; a caller that goes away does not
// cut it short for the others.
func (c *healthCache) check(ctx context.Context, now func() time.Time, check func(context.Context) string) string {
	c.mu.Lock()
	defer c.mu.Unlock()
	if !c.at.IsZero() && now().Sub(c.at) < healthzEvery {
		return c.status
	}
	c.status = check(context.WithoutCancel(ctx))
	c.at = now()
	return c.status
}
