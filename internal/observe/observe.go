// Package observe holds the Connect interceptors every Sigil server uses for
// operations: Prometheus RPC metrics and structured request logs.
package observe

import (
	"context"
	"errors"
	"log/slog"
	"net/http"
	"time"

	"connectrpc.com/connect"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// NewRegistry returns a registry with the Go runtime and process collectors.
// Each server has its own registry: no global state, so several servers can
// run in one process (as `sigil dev` and the tests do).
func NewRegistry() *prometheus.Registry {
	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	return reg
}

// MetricsHandler serves reg in the Prometheus exposition format.
func MetricsHandler(reg *prometheus.Registry) http.Handler {
	return promhttp.HandlerFor(reg, promhttp.HandlerOpts{Registry: reg})
}

// Interceptor records, for every RPC a server handles, a count and a
// latency by procedure and code, and logs the call.
type Interceptor struct {
	requests *prometheus.CounterVec
	duration *prometheus.HistogramVec
	logger   *slog.Logger
}

// NewInterceptor registers the RPC metrics of one port (label port = name).
func NewInterceptor(reg prometheus.Registerer, port string, logger *slog.Logger) *Interceptor {
	labels := prometheus.Labels{"port": port}
	i := &Interceptor{
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "sigil_rpc_requests_total", Help: "RPCs handled, by procedure and Connect code.", ConstLabels: labels,
		}, []string{"procedure", "code"}),
		duration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name: "sigil_rpc_duration_seconds", Help: "RPC latency, by procedure and Connect code.", ConstLabels: labels,
			Buckets: []float64{.001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10, 30, 60},
		}, []string{"procedure", "code"}),
		logger: logger,
	}
	reg.MustRegister(i.requests, i.duration)
	return i
}

func (i *Interceptor) observe(ctx context.Context, procedure string, start time.Time, err error) {
	code := "ok"
	if err != nil {
		code = connect.CodeOf(err).String()
	}
	d := time.Since(start)
	i.requests.WithLabelValues(procedure, code).Inc()
	i.duration.WithLabelValues(procedure, code).Observe(d.Seconds())
	level := slog.LevelDebug
	var ce *connect.Error
	if err != nil {
		level = slog.LevelInfo
		if errors.As(err, &ce) && (ce.Code() == connect.CodeInternal || ce.Code() == connect.CodeUnknown) {
			level = slog.LevelWarn
		}
	}
	if i.logger.Enabled(ctx, level) {
		attrs := []any{"procedure", procedure, "code", code, "duration", d}
		if err != nil {
			attrs = append(attrs, "error", err.Error())
		}
		i.logger.Log(ctx, level, "rpc", attrs...)
	}
}

// WrapUnary observes unary calls.
func (i *Interceptor) WrapUnary(next connect.UnaryFunc) connect.UnaryFunc {
	return func(ctx context.Context, req connect.AnyRequest) (connect.AnyResponse, error) {
		if req.Spec().IsClient {
			return next(ctx, req)
		}
		start := time.Now()
		res, err := next(ctx, req)
		i.observe(ctx, req.Spec().Procedure, start, err)
		return res, err
	}
}

// WrapStreamingClient is a no-op: the interceptor is for servers.
func (i *Interceptor) WrapStreamingClient(next connect.StreamingClientFunc) connect.StreamingClientFunc {
	return next
}

// WrapStreamingHandler observes streaming calls (latency = stream lifetime).
func (i *Interceptor) WrapStreamingHandler(next connect.StreamingHandlerFunc) connect.StreamingHandlerFunc {
	return func(ctx context.Context, conn connect.StreamingHandlerConn) error {
		start := time.Now()
		err := next(ctx, conn)
		i.observe(ctx, conn.Spec().Procedure, start, err)
		return err
	}
}
