package pki

import (
	"bufio"
	"bytes"
	"crypto/sha256"
	"crypto/x509"
	"encoding/hex"
	"errors"
	"fmt"
	"math/big"
	"os"
	"strings"
	"sync"
	"time"
)

// denyListRecheck bounds how long a rewrite of the deny list that leaves
// its size and modification time unchanged (two writes within the
// filesystem's timestamp granularity) goes unnoticed.
const denyListRecheck = time.Second

// DenyList is a file of node certificates the node port refuses, one per
// line: a serial number ("serial:" then hex, colons allowed) or a SHA-256
// fingerprint of the DER certificate ("sha256:" then 64 hex digits, colons
// allowed; a bare 64-digit value is a fingerprint, any other bare hex value
// a serial). Blank lines and text after '#' are ignored.
//
// The file is re-read when it changes, without a restart: Denied looks at
// it at most once per denyListRecheck and whenever its size or
// modification time moved. A file that becomes unreadable or malformed
// keeps the last good list in force (the error is returned by Refresh for
// logging); only at open is a bad file fatal.
type DenyList struct {
	path string
	now  func() time.Time

	mu       sync.Mutex
	serials  map[string]bool // lower-case hex of the big-endian serial, no leading zeros
	prints   map[[32]byte]bool
	size     int64
	modTime  time.Time
	readAt   time.Time
	contents [32]byte // SHA-256 of the file, to tell a real change
	gen      uint64   // counts the changes
}

// Generation counts the changes of the list since it was opened, so a
// watcher can tell that it changed whoever re-read it.
func (d *DenyList) Generation() uint64 {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.gen
}

// OpenDenyList reads the deny list at path.
func OpenDenyList(path string) (*DenyList, error) {
	d := &DenyList{path: path, now: time.Now}
	if _, err := d.Refresh(); err != nil {
		return nil, err
	}
	return d, nil
}

// Path is the file the list is read from.
func (d *DenyList) Path() string { return d.path }

// Denied reports whether cert is on the list, and the entry that matched.
func (d *DenyList) Denied(cert *x509.Certificate) (string, bool) {
	_, _ = d.Refresh() // errors keep the last good list; Refresh's callers log them
	d.mu.Lock()
	defer d.mu.Unlock()
	if serial := serialKey(cert.SerialNumber); d.serials[serial] {
		return "serial " + serial, true
	}
	if fp := sha256.Sum256(cert.Raw); d.prints[fp] {
		return "sha256 fingerprint " + hex.EncodeToString(fp[:]), true
	}
	return "", false
}

// Refresh re-reads the file if it may have changed, and reports whether
// the list changed.
func (d *DenyList) Refresh() (changed bool, err error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	fi, err := os.Stat(d.path)
	if err != nil {
		return false, fmt.Errorf("node deny list: %w", err)
	}
	now := d.now()
	if fi.Size() == d.size && fi.ModTime().Equal(d.modTime) && now.Sub(d.readAt) < denyListRecheck {
		return false, nil
	}
	data, err := os.ReadFile(d.path)
	if err != nil {
		return false, fmt.Errorf("node deny list: %w", err)
	}
	d.size, d.modTime, d.readAt = fi.Size(), fi.ModTime(), now
	sum := sha256.Sum256(data)
	if sum == d.contents && d.serials != nil {
		return false, nil
	}
	serials, prints, err := parseDenyList(data)
	if err != nil {
		return false, fmt.Errorf("node deny list %s: %w (the previous list stays in force)", d.path, err)
	}
	d.serials, d.prints, d.contents = serials, prints, sum
	d.gen++
	return true, nil
}

// Len is the number of entries in force.
func (d *DenyList) Len() int {
	d.mu.Lock()
	defer d.mu.Unlock()
	return len(d.serials) + len(d.prints)
}

func parseDenyList(data []byte) (map[string]bool, map[[32]byte]bool, error) {
	serials, prints := map[string]bool{}, map[[32]byte]bool{}
	sc := bufio.NewScanner(bytes.NewReader(data))
	for n := 1; sc.Scan(); n++ {
		line, _, _ := strings.Cut(sc.Text(), "#")
		line = strings.ToLower(strings.TrimSpace(line))
		if line == "" {
			continue
		}
		kind, value, explicit := strings.Cut(line, ":")
		if !explicit || (kind != "serial" && kind != "sha256") {
			kind, value = "", line
		}
		digits := strings.ReplaceAll(strings.TrimSpace(value), ":", "")
		if kind != "sha256" && len(digits)%2 == 1 {
			// A serial is a number: its hex form may drop a leading zero
			// (Go's big.Int.Text(16), some tools' output).
			digits = "0" + digits
		}
		raw, err := hex.DecodeString(digits)
		if err != nil || len(raw) == 0 {
			return nil, nil, fmt.Errorf("line %d: %q is neither a serial number nor a SHA-256 fingerprint in hex", n, sc.Text())
		}
		switch {
		case kind == "sha256" || (kind == "" && len(raw) == sha256.Size):
			if len(raw) != sha256.Size {
				return nil, nil, fmt.Errorf("line %d: a SHA-256 fingerprint is 32 bytes, got %d", n, len(raw))
			}
			prints[[32]byte(raw)] = true
		default:
			if len(raw) > 20 {
				return nil, nil, fmt.Errorf("line %d: a certificate serial number is at most 20 bytes, got %d", n, len(raw))
			}
			serials[serialKey(new(big.Int).SetBytes(raw))] = true
		}
	}
	if err := sc.Err(); err != nil {
		return nil, nil, err
	}
	return serials, prints, nil
}

func serialKey(n *big.Int) string {
	if n == nil {
		return ""
	}
	return hex.EncodeToString(n.Bytes())
}

// ErrDenied is returned for a certificate on the deny list.
var ErrDenied = errors.New("certificate is on the node deny list")
