package sigil_test

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"testing"

	"connectrpc.com/connect"

	walletv1 "github.com/sigil-wallet/sigil/gen/go/sigil/wallet/v1"
	"github.com/sigil-wallet/sigil/gen/go/sigil/wallet/v1/walletv1connect"
	sigil "github.com/sigil-wallet/sigil/sdk/go"
)

// reasonServer answers every GetWallet with a FailedPrecondition carrying
// the given reason, as the coordinator does.
type reasonServer struct {
	walletv1connect.UnimplementedWalletServiceHandler
	reason walletv1.ErrorReason
}

func (s reasonServer) GetWallet(context.Context, *connect.Request[walletv1.GetWalletRequest]) (*connect.Response[walletv1.GetWalletResponse], error) {
	ce := connect.NewError(connect.CodeFailedPrecondition, errors.New("wallet is not active"))
	if s.reason != walletv1.ErrorReason_ERROR_REASON_UNSPECIFIED {
		d, err := connect.NewErrorDetail(&walletv1.ErrorDetail{Reason: s.reason})
		if err != nil {
			return nil, err
		}
		ce.AddDetail(d)
	}
	return nil, ce
}

func TestReason(t *testing.T) {
	for _, want := range []walletv1.ErrorReason{
		walletv1.ErrorReason_ERROR_REASON_WALLET_NOT_ACTIVE,
		walletv1.ErrorReason_ERROR_REASON_UNSPECIFIED, // a server that sends none
		walletv1.ErrorReason(999),                     // a reason newer than this SDK
	} {
		for _, proto := range protocols {
			t.Run(want.String()+"/"+proto.name, func(t *testing.T) {
				mux := http.NewServeMux()
				mux.Handle(walletv1connect.NewWalletServiceHandler(reasonServer{reason: want}))
				var p http.Protocols
				p.SetHTTP1(true)
				p.SetUnencryptedHTTP2(true)
				srv := httptest.NewUnstartedServer(mux)
				srv.Config.Protocols = &p
				srv.Start()
				t.Cleanup(srv.Close)
				_, err := newClient(t, srv.URL, "t", proto.opt).GetWallet(t.Context(), "wal_aaaaaaaaaaaaaaaaaaaaaaaaaa")
				if !sigil.IsFailedPrecondition(err) || sigil.Reason(err) != want {
					t.Fatalf("err = %v, Reason = %v; want FailedPrecondition with %v", err, sigil.Reason(err), want)
				}
			})
		}
	}
	if got := sigil.Reason(errors.New("not from a server")); got != walletv1.ErrorReason_ERROR_REASON_UNSPECIFIED {
		t.Fatalf("Reason of a plain error = %v", got)
	}
}
