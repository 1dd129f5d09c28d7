package backup

import (
	"encoding/binary"
	"testing"
	"time"

	"github.com/sigil-wallet/sigil/signer/mpc/mpctest"
)

// FuzzDecode feeds the envelope decoder what a backup file may hold once
// decrypted (backups come back from storage the operator does not fully
// control): it must never panic, and anything it accepts must check.
func FuzzDecode(f *testing.F) {
	h, _ := encode(Header{WalletID: "wal_x", Signer: "signer-1", KeyScheme: KeySchemeSecp256k1, Protocol: ProtocolCMP,
		KeyID: "cer_x", Threshold: 2, Group: []string{"signer-1"}, PublicKey: "02", CreatedAt: time.Unix(0, 0)}, []byte{0xa0})
	f.Add(h)
	cfg := mpctest.Configs(f, 3, 2)["signer-1"]
	share, err := cfg.MarshalBinary()
	if err != nil {
		f.Fatal(err)
	}
	hd, err := newHeader("wal_x", "signer-1", "cer_x", cfg, time.Unix(0, 0))
	if err != nil {
		f.Fatal(err)
	}
	valid, err := encode(hd, share)
	if err != nil {
		f.Fatal(err)
	}
	f.Add(valid)
	wh := Header{WalletID: "wal_x", Signer: HSMHolder, KeyScheme: KeySchemeSecp256k1, Protocol: ProtocolHSMWrapped, KeyID: "0011",
		Threshold: 1, Group: []string{HSMHolder}, PublicKey: hd.PublicKey}
	wrapped, err := encode(wh, make([]byte, 40))
	if err != nil {
		f.Fatal(err)
	}
	f.Add(wrapped)
	f.Add([]byte(magic))
	f.Add(binary.BigEndian.AppendUint32(append([]byte(magic), Version), 0xffffffff))
	f.Fuzz(func(t *testing.T, plain []byte) {
		sh, err := decode(plain)
		switch {
		case err != nil:
		case sh.Protocol == ProtocolHSMWrapped:
			if _, err := checkWrapped(sh.Header, sh.Wrapped); err != nil {
				t.Fatalf("accepted a wrapped key that does not check: %v", err)
			}
		default:
			if err := sh.Header.check(sh.Config); err != nil {
				t.Fatalf("accepted a share that does not check: %v", err)
			}
		}
	})
}
