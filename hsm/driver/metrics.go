package driver

import (
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// Metrics are a driver's Prometheus metrics: PKCS#11 call latency by
// operation, and jobs by kind and outcome.
type Metrics struct {
	calls       *prometheus.HistogramVec
	jobs        *prometheus.CounterVec
	jobSeconds  *prometheus.HistogramVec
	claimErrors prometheus.Counter
}

// NewMetrics creates the metrics and registers them on reg (nil: not
// registered, for tests and embedding).
func NewMetrics(reg prometheus.Registerer) *Metrics {
	m := &Metrics{
		calls: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "sigil_hsm_pkcs11_call_duration_seconds",
			Help:    "PKCS#11 call latency by operation (generate, wrap, unwrap, sign, destroy) and result.",
			Buckets: []float64{.0001, .00025, .0005, .001, .0025, .005, .01, .025, .05, .1, .25, 1},
		}, []string{"op", "result"}),
		jobs: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "sigil_hsm_driver_jobs_total",
			Help: "Jobs this driver finished, by kind and outcome (completed, failed, dropped: lease lost or result refused).",
		}, []string{"kind", "outcome"}),
		jobSeconds: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "sigil_hsm_driver_job_duration_seconds",
			Help:    "Time from claim to accepted result, by kind.",
			Buckets: []float64{.001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10},
		}, []string{"kind"}),
		claimErrors: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "sigil_hsm_driver_claim_errors_total",
			Help: "ClaimJob calls that failed (coordinator unreachable, refused).",
		}),
	}
	if reg != nil {
		reg.MustRegister(m.calls, m.jobs, m.jobSeconds, m.claimErrors)
	}
	return m
}

// ObserveCall is the hsm.Config.ObserveCall hook.
func (m *Metrics) ObserveCall(op string, d time.Duration, err error) {
	result := "ok"
	if err != nil {
		result = "error"
	}
	m.calls.WithLabelValues(op, result).Observe(d.Seconds())
}
