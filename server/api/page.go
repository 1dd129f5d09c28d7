package api

import (
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"fmt"
	"strconv"
	"strings"

	"connectrpc.com/connect"

	walletv1 "github.com/sigil-wallet/sigil/gen/go/sigil/wallet/v1"
	"github.com/sigil-wallet/sigil/server/store"
	"github.com/sigil-wallet/sigil/server/wire"
)

const (
	defaultPageSize = 100
	maxPageSize     = 1000
)

// ErrBadPageToken reports a page token that this server did not issue for this
// list and filter.
var ErrBadPageToken = wire.NewSentinel(connect.CodeInvalidArgument, walletv1.ErrorReason_ERROR_REASON_INVALID_ARGUMENT,
	"page_token is not a token this server issued for this list and filter; start again with an empty page_token")

// encodePage makes the opaque token of the page after seq. It binds the
// list and its filter, so a token cannot be replayed against another query.
func encodePage(seq int64, list, filter string) string {
	raw := fmt.Sprintf("v1.%s.%d.%s", list, seq, filterTag(list, filter))
	return base64.RawURLEncoding.EncodeToString([]byte(raw))
}

func decodePage(token string, size int32, list, filter string) (store.Page, error) {
	p := store.Page{Limit: int(size)}
	if p.Limit <= 0 {
		p.Limit = defaultPageSize
	}
	p.Limit = min(p.Limit, maxPageSize)
	if token == "" {
		return p, nil
	}
	raw, err := base64.RawURLEncoding.DecodeString(token)
	if err != nil {
		return p, ErrBadPageToken
	}
	parts := strings.Split(string(raw), ".")
	if len(parts) != 4 || parts[0] != "v1" || parts[1] != list || parts[3] != filterTag(list, filter) {
		return p, ErrBadPageToken
	}
	seq, err := strconv.ParseInt(parts[2], 10, 64)
	if err != nil || seq < 0 {
		return p, ErrBadPageToken
	}
	p.AfterSeq = seq
	return p, nil
}

func filterTag(list, filter string) string {
	h := sha256.Sum256([]byte(list + "\x00" + filter))
	return hex.EncodeToString(h[:6])
}
