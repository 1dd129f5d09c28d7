package reqsig

import "github.com/sigil-wallet/sigil/internal/address"

func eip191(msg string) []byte { return address.EIP191Digest([]byte(msg)) }
