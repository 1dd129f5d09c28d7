package signer

import (
	"crypto/tls"
	"log/slog"
	"net/http"

	"github.com/sigil-wallet/sigil/internal/failover"
)

// coordinatorClient is the HTTP client of the coordinator's node port: the
// comma-separated replicas of --coordinator, the next one used when one is
// unreachable. Every call the signer makes to the coordinator is retried
// (the ceremony stream reconnects, relay sends and mailbox reads back off
// and try again), and each retry after a failure goes to the next replica.
func coordinatorClient(urls string, tc *tls.Config, logger *slog.Logger) (*http.Client, string, error) {
	endpoints, err := failover.ParseURLs(urls, "--coordinator")
	if err != nil {
		return nil, "", err
	}
	ft := failover.New(failover.NewHTTPTransport(&http.Transport{TLSClientConfig: tc}), endpoints, logger)
	return &http.Client{Transport: ft}, ft.BaseURL(), nil
}
