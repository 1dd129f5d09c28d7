package hsm

import (
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"

	"github.com/miekg/pkcs11"
)

// A PKCS#11 library is process-global state: C_Initialize and C_Finalize act
// on the whole library, and a token's login state is shared by every session
// the process has on it. So modules and logins are reference counted here,
// and the last handle out finalises the library or logs out.
var registry = struct {
	sync.Mutex
	modules map[string]*module
	// pinKey keys the HMAC kept for each login, so a second handle can be
	// checked against the PIN that logged the token in without keeping a
	// second copy of the PIN itself.
	pinKey []byte
}{modules: map[string]*module{}}

type module struct {
	key      string // resolved path; registry key
	ctx      *pkcs11.Ctx
	refs     int
	finalize bool // we called C_Initialize, so we call C_Finalize
	logins   map[uint]*login
}

type login struct {
	refs   int
	pinMAC []byte
	ours   bool // we performed C_Login, so we perform C_Logout
}

// acquireModule loads and initialises the module at path, or shares the copy
// another handle already loaded.
func acquireModule(path string) (*module, error) {
	if _, err := os.Stat(path); err != nil {
		return nil, fmt.Errorf("%w: %s: %v; install the vendor's PKCS#11 library "+
			"(softhsm2 for tests) or fix the module path", ErrModule, path, err)
	}
	key, err := filepath.EvalSymlinks(path)
	if err != nil {
		return nil, fmt.Errorf("%w: %s: %v", ErrModule, path, err)
	}
	if abs, err := filepath.Abs(key); err == nil {
		key = abs
	}

	registry.Lock()
	defer registry.Unlock()
	if m, ok := registry.modules[key]; ok {
		m.refs++
		return m, nil
	}
	ctx := pkcs11.New(key)
	if ctx == nil {
		// miekg/pkcs11 does not surface dlerror(); the two causes are a file
		// that is not a shared library for this platform and a library with
		// no C_GetFunctionList.
		return nil, fmt.Errorf("%w: %s is not a loadable PKCS#11 library "+
			"(dlopen failed or C_GetFunctionList missing); check the path and architecture",
			ErrModule, path)
	}
	m := &module{key: key, ctx: ctx, refs: 1, finalize: true, logins: map[uint]*login{}}
	if err := ctx.Initialize(); err != nil {
		if !isCKR(err, pkcs11.CKR_CRYPTOKI_ALREADY_INITIALIZED) {
			ctx.Destroy()
			return nil, fmt.Errorf("%w: %s: C_Initialize: %v", ErrModule, path, err)
		}
		// Someone else in this process (crypto11, say) initialised it; they
		// own C_Finalize.
		m.finalize = false
	}
	registry.modules[key] = m
	return m, nil
}

// release drops one reference and finalises the library with the last one.
func (m *module) release() error {
	registry.Lock()
	defer registry.Unlock()
	m.refs--
	if m.refs > 0 {
		return nil
	}
	delete(registry.modules, m.key)
	var err error
	if m.finalize {
		err = m.ctx.Finalize()
	}
	m.ctx.Destroy()
	return ckrError("C_Finalize", err)
}

// findSlot returns the slot of the initialised token labelled label.
func (m *module) findSlot(label string) (uint, error) {
	slots, err := m.ctx.GetSlotList(true)
	if err != nil {
		return 0, fmt.Errorf("%w: C_GetSlotList: %v", ErrModule, err)
	}
	var labels []string
	var found []uint
	for _, slot := range slots {
		info, err := m.ctx.GetTokenInfo(slot)
		if err != nil || info.Flags&pkcs11.CKF_TOKEN_INITIALIZED == 0 {
			continue // SoftHSM always offers one empty slot; skip it.
		}
		l := strings.TrimRight(info.Label, " \x00")
		labels = append(labels, l)
		if l == label {
			found = append(found, slot)
		}
	}
	switch len(found) {
	case 1:
		return found[0], nil
	case 0:
		slices.Sort(labels)
		// Some modules (SoftHSM) list tokens only at C_Initialize, so a token
		// made while this process had the module loaded is not seen yet.
		return 0, fmt.Errorf("%w: no token labelled %q in %s; tokens present: %s "+
			"(a token initialised after this process loaded the module may need a restart)",
			ErrTokenNotFound, label, m.key, quoteList(labels))
	default:
		return 0, fmt.Errorf("%w: %d tokens labelled %q; give each token a unique label",
			ErrTokenNotFound, len(found), label)
	}
}

func quoteList(s []string) string {
	if len(s) == 0 {
		return "none (initialise one, e.g. softhsm2-util --init-token --free --label ...)"
	}
	q := make([]string, len(s))
	for i, v := range s {
		q[i] = fmt.Sprintf("%q", v)
	}
	return strings.Join(q, ", ")
}

// login logs the token in slot in as CKU_USER through session sh, or joins
// the login another handle of this process made, after checking that handle
// used the same PIN: a token already logged in accepts any PIN, and a wrong
// PIN must fail the same way whether or not another handle is open.
func (m *module) login(sh pkcs11.SessionHandle, slot uint, pin string) error {
	registry.Lock()
	defer registry.Unlock()
	mac := pinMAC(pin)
	if l, ok := m.logins[slot]; ok {
		if !hmac.Equal(l.pinMAC, mac) {
			return fmt.Errorf("%w: PIN differs from the one this process logged the token in with", ErrPIN)
		}
		l.refs++
		return nil
	}
	l := &login{refs: 1, pinMAC: mac, ours: true}
	if err := m.ctx.Login(sh, pkcs11.CKU_USER, pin); err != nil {
		switch {
		case isCKR(err, pkcs11.CKR_USER_ALREADY_LOGGED_IN):
			// Logged in by code outside this package; we cannot check the
			// PIN, and must not log out from under it.
			l.ours = false
		case isCKR(err, pkcs11.CKR_PIN_INCORRECT), isCKR(err, pkcs11.CKR_PIN_LEN_RANGE):
			return fmt.Errorf("%w: the token refused the PIN (%v); check the configured PIN, "+
				"repeated failures may lock the token", ErrPIN, err)
		case isCKR(err, pkcs11.CKR_PIN_LOCKED):
			return fmt.Errorf("%w: the user PIN is locked; the security officer must reset it", ErrPIN)
		default:
			return ckrError("C_Login", err)
		}
	}
	m.logins[slot] = l
	return nil
}

// relogin restores a login lost with the sessions (all sessions of a token
// closed means logged out). It does not change reference counts.
func (m *module) relogin(sh pkcs11.SessionHandle, pin string) error {
	err := m.ctx.Login(sh, pkcs11.CKU_USER, pin)
	if err != nil && !isCKR(err, pkcs11.CKR_USER_ALREADY_LOGGED_IN) {
		return ckrError("C_Login", err)
	}
	return nil
}

// logout drops one reference to the slot's login, logging out with the last.
func (m *module) logout(sh pkcs11.SessionHandle, slot uint) error {
	registry.Lock()
	defer registry.Unlock()
	l, ok := m.logins[slot]
	if !ok {
		return nil
	}
	l.refs--
	if l.refs > 0 {
		return nil
	}
	delete(m.logins, slot)
	if !l.ours || sh == 0 {
		return nil
	}
	err := m.ctx.Logout(sh)
	if isCKR(err, pkcs11.CKR_USER_NOT_LOGGED_IN) {
		err = nil
	}
	return ckrError("C_Logout", err)
}

// pinMAC must be called with registry locked.
func pinMAC(pin string) []byte {
	if registry.pinKey == nil {
		registry.pinKey = make([]byte, 32)
		// Since Go 1.24 crypto/rand.Read never returns an error; it aborts
		// the program instead.
		_, _ = rand.Read(registry.pinKey)
	}
	h := hmac.New(sha256.New, registry.pinKey)
	h.Write([]byte(pin))
	return h.Sum(nil)
}
