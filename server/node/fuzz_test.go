package node_test

import (
	"testing"

	"buf.build/go/protovalidate"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"

	ceremonyv1 "github.com/sigil-wallet/sigil/gen/go/sigil/ceremony/v1"
	deliveryv1 "github.com/sigil-wallet/sigil/gen/go/sigil/delivery/v1"
	driverv1 "github.com/sigil-wallet/sigil/gen/go/sigil/driver/v1"
)

// nodeRequests are the messages that arrive on the node port from signers
// and drivers.
func nodeRequests() []proto.Message {
	return []proto.Message{
		&ceremonyv1.WatchCeremoniesRequest{}, &ceremonyv1.GetCeremonyRequest{},
		&ceremonyv1.CompleteCeremonyRequest{}, &ceremonyv1.FailCeremonyRequest{},
		&deliveryv1.SendRequest{}, &deliveryv1.ReceiveRequest{},
		&driverv1.ClaimJobRequest{}, &driverv1.RenewLeaseRequest{},
		&driverv1.CompleteJobRequest{}, &driverv1.FailJobRequest{},
	}
}

// FuzzNodeRequestDecoding feeds arbitrary bytes through the decoding and
// validation every node-port request goes through (binary and JSON), which
// must reject or accept but never panic.
func FuzzNodeRequestDecoding(f *testing.F) {
	for _, m := range []proto.Message{
		&deliveryv1.SendRequest{CeremonyId: "cer_aaaaaaaaaaaaaaaaaaaaaaaaaa", Messages: []*deliveryv1.OutgoingMessage{{To: "signer-2", Sealed: []byte{1, 2, 3}}}},
		&ceremonyv1.CompleteCeremonyRequest{CeremonyId: "cer_aaaaaaaaaaaaaaaaaaaaaaaaaa", Output: &ceremonyv1.CompleteCeremonyRequest_Sign{Sign: &ceremonyv1.SignOutput{Signature: make([]byte, 64)}}},
		&driverv1.CompleteJobRequest{JobId: "job_aaaaaaaaaaaaaaaaaaaaaaaaaa", LeaseId: "lease_aaaaaaaaaaaaaaaaaaaaaaaaaa"},
		&ceremonyv1.WatchCeremoniesRequest{Announcement: []byte("x")},
	} {
		b, err := proto.Marshal(m)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
		j, _ := protojson.Marshal(m)
		f.Add(j)
	}
	v, err := protovalidate.New()
	if err != nil {
		f.Fatal(err)
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		for _, m := range nodeRequests() {
			for _, unmarshal := range []func([]byte, proto.Message) error{proto.Unmarshal, protojson.Unmarshal} {
				msg := m.ProtoReflect().New().Interface()
				if err := unmarshal(data, msg); err != nil {
					continue
				}
				_ = v.Validate(msg)
			}
		}
	})
}
