package ceremony

import (
	"context"

	"github.com/prometheus/client_golang/prometheus"
	"google.golang.org/protobuf/types/known/timestamppb"

	ceremonyv1 "github.com/sigil-wallet/sigil/gen/go/sigil/ceremony/v1"
	"github.com/sigil-wallet/sigil/server/store"
)

type metrics struct {
	started  *prometheus.CounterVec
	ended    *prometheus.CounterVec
	duration *prometheus.HistogramVec
	retries  prometheus.Counter
	// presigUsed counts signatures started with a presignature.
	presigUsed prometheus.Counter
	online     prometheus.Gauge
	relayed    prometheus.Counter
	bytes      prometheus.Counter
	// quotaRefusals counts relay sends refused for passing RelayQuota.
	quotaRefusals prometheus.Counter
	// takeovers counts ceremonies taken over from a replica whose lease
	// expired.
	takeovers prometheus.Counter
	// queued is how many waiting ceremonies this replica holds back for
	// busy signers.
	queued prometheus.Gauge
}

func newMetrics(reg prometheus.Registerer) *metrics {
	m := &metrics{
		started: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "sigil_ceremonies_started_total", Help: "MPC ceremonies started, by kind."}, []string{"kind"}),
		ended:   prometheus.NewCounterVec(prometheus.CounterOpts{Name: "sigil_ceremonies_ended_total", Help: "MPC ceremonies ended, by kind and state."}, []string{"kind", "state"}),
		duration: prometheus.NewHistogramVec(prometheus.HistogramOpts{Name: "sigil_ceremony_duration_seconds", Help: "Time from start to end of MPC ceremonies.",
			Buckets: []float64{.5, 1, 2, 4, 8, 15, 30, 60, 120, 300}}, []string{"kind", "state"}),
		retries: prometheus.NewCounter(prometheus.CounterOpts{Name: "sigil_sign_retries_total", Help: "Signing attempts retried with another quorum."}),
		presigUsed: prometheus.NewCounter(prometheus.CounterOpts{Name: "sigil_presignatures_used_total",
			Help: "Signatures started with a presignature (one round) instead of the full protocol."}),
		online:  prometheus.NewGauge(prometheus.GaugeOpts{Name: "sigil_signers_online", Help: "MPC signers with a ceremony stream open."}),
		relayed: prometheus.NewCounter(prometheus.CounterOpts{Name: "sigil_relay_messages_total", Help: "Sealed messages accepted by the relay."}),
		bytes:   prometheus.NewCounter(prometheus.CounterOpts{Name: "sigil_relay_bytes_total", Help: "Bytes of sealed messages accepted by the relay."}),
		quotaRefusals: prometheus.NewCounter(prometheus.CounterOpts{Name: "sigil_relay_quota_refusals_total",
			Help: "Relay sends refused because the sender passed its per-ceremony quota of messages or bytes."}),
		takeovers: prometheus.NewCounter(prometheus.CounterOpts{Name: "sigil_ceremony_takeovers_total",
			Help: "Running ceremonies taken over from a coordinator replica whose lease expired."}),
		queued: prometheus.NewGauge(prometheus.GaugeOpts{Name: "sigil_ceremonies_queued",
			Help: "Waiting MPC ceremonies queued because their signers run --max-concurrent-ceremonies already."}),
	}
	reg.MustRegister(m.started, m.ended, m.duration, m.retries, m.presigUsed, m.online, m.relayed, m.bytes, m.quotaRefusals, m.takeovers, m.queued)
	return m
}

func event(c *ceremonyv1.Ceremony) *ceremonyv1.WatchCeremoniesResponse {
	return &ceremonyv1.WatchCeremoniesResponse{Event: &ceremonyv1.WatchCeremoniesResponse_Ceremony{Ceremony: c}}
}

func ended(id string, state store.CeremonyState) *ceremonyv1.WatchCeremoniesResponse {
	return &ceremonyv1.WatchCeremoniesResponse{Event: &ceremonyv1.WatchCeremoniesResponse_Ended{
		Ended: &ceremonyv1.CeremonyEnded{CeremonyId: id, State: stateToProto(state)}}}
}

func stateToProto(s store.CeremonyState) ceremonyv1.CeremonyState {
	switch s {
	case store.CeremonyWaiting, store.CeremonyRunning:
		return ceremonyv1.CeremonyState_CEREMONY_STATE_RUNNING
	case store.CeremonySucceeded:
		return ceremonyv1.CeremonyState_CEREMONY_STATE_SUCCEEDED
	case store.CeremonyFailed:
		return ceremonyv1.CeremonyState_CEREMONY_STATE_FAILED
	default:
		return ceremonyv1.CeremonyState_CEREMONY_STATE_UNSPECIFIED
	}
}

// toProto renders a ceremony for its parties; its protocol adds what they
// need to check and run it.
func (o *Orchestrator) toProto(ctx context.Context, c *store.Ceremony, peers []*ceremonyv1.PeerAnnouncement) (*ceremonyv1.Ceremony, error) {
	out := &ceremonyv1.Ceremony{
		Id: c.ID, WalletId: c.WalletID, SignatureId: c.SignatureID, Threshold: uint32(c.Threshold),
		Parties: c.Parties, Peers: peers, State: stateToProto(c.State),
	}
	if !c.Deadline.IsZero() {
		out.Deadline = timestamppb.New(c.Deadline)
	}
	p, err := o.cfg.Protocols.Lookup(c)
	if err != nil {
		return nil, err
	}
	out.Kind, out.KeyScheme, out.PresignatureId = p.Kind(), c.KeyScheme, c.PresignatureID
	if err := p.Describe(ctx, o.store, c, out); err != nil {
		return nil, err
	}
	return out, nil
}
