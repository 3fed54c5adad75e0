package metrics

import (
	"context"
	"net/http"
	"slices"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"google.golang.org/grpc"
	"google.golang.org/grpc/status"

	"github.com/mao-research/mao/api"
)

// Metrics are one site's metrics.
type Metrics struct {
	reg   *prometheus.Registry
	with  prometheus.Registerer // reg, adding the site label
	names []string              // of mao's own metrics

	runsStarted   *prometheus.CounterVec
	runsFinished  *prometheus.CounterVec
	runDuration   *prometheus.HistogramVec
	tickLateness  prometheus.Observer
	claims        *prometheus.CounterVec
	verdicts      *prometheus.CounterVec
	notifications *prometheus.CounterVec
	etcdLatency   *prometheus.HistogramVec
	etcdErrors    *prometheus.CounterVec
}

// New returns the metrics of site, with the Go runtime's and the
// process's.
func New(site string) *Metrics {
	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	m := &Metrics{reg: reg, with: prometheus.WrapRegistererWith(prometheus.Labels{"site": site}, reg)}
	m.runsStarted = m.counter("mao_runs_started_total", "Runs whose attempt started at this site (an attempt of a retried run counts again).", "tool")
	m.runsFinished = m.counter("mao_runs_finished_total", "Runs this site recorded in a final state, by that state.", "tool", "state")
	m.runDuration = m.histogram("mao_run_duration_seconds", "Time from a run's start to its end, for the runs this site ended.",
		prometheus.ExponentialBuckets(1, 2, 12), "tool") // 1 s to about 34 min
	m.tickLateness = m.histogram("mao_tick_lateness_seconds", "Time from a scheduled tick to its container's start.",
		prometheus.ExponentialBuckets(0.01, 2, 12)).WithLabelValues() // 10 ms to about 20 s
	m.claims = m.counter("mao_claims_total", "Claims this site made of schedule ticks (kind tick) and run requests (kind request), won or lost to another site.",
		"kind", "result")
	m.verdicts = m.counter("mao_detector_verdicts_total", "Spike detector verdicts on the runs this site ended, by outcome.", "tool", "outcome")
	m.notifications = m.counter("mao_notifications_total", "Notifications this site sent, by outcome.", "outcome")
	m.etcdLatency = m.histogram("mao_etcd_request_duration_seconds", "Time of this site's etcd requests, by gRPC method.",
		prometheus.ExponentialBuckets(0.0005, 2, 14), "method") // 0.5 ms to about 4 s
	m.etcdErrors = m.counter("mao_etcd_request_errors_total", "This site's etcd requests that failed, by gRPC method and code.", "method", "code")
	return m
}

func (m *Metrics) counter(name, help string, labels ...string) *prometheus.CounterVec {
	c := prometheus.NewCounterVec(prometheus.CounterOpts{Name: name, Help: help}, labels)
	m.with.MustRegister(c)
	m.names = append(m.names, name)
	return c
}

func (m *Metrics) histogram(name, help string, buckets []float64, labels ...string) *prometheus.HistogramVec {
	h := prometheus.NewHistogramVec(prometheus.HistogramOpts{Name: name, Help: help, Buckets: buckets}, labels)
	m.with.MustRegister(h)
	m.names = append(m.names, name+"_bucket", name+"_sum", name+"_count")
	return h
}

// Handler serves the metrics in the Prometheus text format.
func (m *Metrics) Handler() http.Handler {
	return promhttp.HandlerFor(m.reg, promhttp.HandlerOpts{ErrorHandling: promhttp.ContinueOnError})
}

// Names lists the names of mao's own series (a histogram's _bucket,
// _sum and _count): those a vector has no sample of yet (no etcd error
// so far) are not in a scrape, but are mao's.
func (m *Metrics) Names() []string { return slices.Clone(m.names) }

// Backlog adds a gauge that f reads when the metrics are scraped: the
// length of a queue (pushes waiting, work journaled offline).
func (m *Metrics) Backlog(name, help string, f func() float64) {
	m.with.MustRegister(prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: name, Help: help}, f))
	m.names = append(m.names, name)
}

// RunStarted counts an attempt of run that started at this site.
func (m *Metrics) RunStarted(run api.Run) {
	m.runsStarted.WithLabelValues(run.Tool).Inc()
}

// RunEnded counts a run that this site recorded in a final state, with
// its duration, its tick's lateness (a scheduled run whose container
// started) and its detector verdicts.
func (m *Metrics) RunEnded(run api.Run) {
	m.runsFinished.WithLabelValues(run.Tool, string(run.State)).Inc()
	if run.StartedAt != nil && run.FinishedAt != nil {
		m.runDuration.WithLabelValues(run.Tool).Observe(run.FinishedAt.Sub(*run.StartedAt).Seconds())
	}
	// A tick's first attempt: a retry's start waited for its delay.
	if run.Trigger == api.TriggerSchedule && run.Attempt <= 1 && run.ScheduledTime != nil && run.ContainerStartedAt != nil {
		m.tickLateness.Observe(max(run.ContainerStartedAt.Sub(*run.ScheduledTime), 0).Seconds())
	}
	for _, v := range run.Verdicts {
		m.verdicts.WithLabelValues(run.Tool, closed(v.Status, "ok", "spike", "no-data", "warming-up")).Inc()
	}
}

// ForgetTool drops the series of a tool that was removed, so that their
// number does not grow with every tool ever registered; a run of it that
// ends later starts them again.
func (m *Metrics) ForgetTool(tool string) {
	for _, v := range []interface {
		DeletePartialMatch(prometheus.Labels) int
	}{m.runsStarted, m.runsFinished, m.runDuration, m.verdicts} {
		v.DeletePartialMatch(prometheus.Labels{"tool": tool})
	}
}

// Claimed counts a claim of kind "tick" or "request", won or lost.
func (m *Metrics) Claimed(kind string, won bool) {
	result := "lost"
	if won {
		result = "won"
	}
	m.claims.WithLabelValues(kind, result).Inc()
}

// Notified counts the outcome of a notification.
func (m *Metrics) Notified(n api.Notification) {
	m.notifications.WithLabelValues(closed(n.Status, "sent", "failed")).Inc()
}

// closed is v when it is one of values, else "other": a label takes no
// value from outside its set.
func closed(v string, values ...string) string {
	if slices.Contains(values, v) {
		return v
	}
	return "other"
}

// EtcdInterceptor times each unary etcd request (gRPC) and counts those
// that fail; the etcd client takes it as a dial option. It sees each
// attempt of a request that clientv3 retries (its retries wrap it), and no
// stream (watches, lease keep-alives).
func (m *Metrics) EtcdInterceptor() grpc.UnaryClientInterceptor {
	return func(ctx context.Context, method string, req, reply any, cc *grpc.ClientConn, invoker grpc.UnaryInvoker, opts ...grpc.CallOption) error {
		began := time.Now()
		err := invoker(ctx, method, req, reply, cc, opts...)
		name := method[strings.LastIndexByte(method, '/')+1:] // "/etcdserverpb.KV/Range" → "Range"
		m.etcdLatency.WithLabelValues(name).Observe(time.Since(began).Seconds())
		if err != nil {
			m.etcdErrors.WithLabelValues(name, status.Code(err).String()).Inc()
		}
		return err
	}
}
