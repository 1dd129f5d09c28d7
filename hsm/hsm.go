package hsm

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/miekg/pkcs11"
)

// HSM is a handle on one token of a PKCS#11 module, with a pool of logged-in
// sessions. It is safe for concurrent use. Obtain one with Open (signing
// service) or OpenToken (provisioning), and Close it when done.
type HSM struct {
	cfg     Config // PIN cleared; the pool keeps the only copy
	mod     *module
	slot    uint
	pool    *pool
	observe func(op string, d time.Duration, err error)

	mkMu      sync.RWMutex
	masterKey pkcs11.ObjectHandle // zero: none found (yet)

	closeOnce sync.Once
	closeErr  error
}

// Open opens the token and requires its master key, as the signing driver
// does: a driver without the master key could neither generate nor sign, so
// it fails at startup with ErrNoMasterKey rather than on the first job.
func Open(ctx context.Context, cfg Config) (*HSM, error) {
	h, err := OpenToken(ctx, cfg)
	if err != nil {
		return nil, err
	}
	if !h.HasMasterKey() {
		_ = h.Close()
		return nil, fmt.Errorf("%w (label %q on token %q)", ErrNoMasterKey, h.cfg.MasterKeyLabel, h.cfg.TokenLabel)
	}
	return h, nil
}

// OpenToken loads the module, finds the token, logs in and opens the session
// pool, but does not require the master key. It serves `sigil hsm
// init-master-key` and `import-master-key`; a master key present on the token
// is picked up and checked just as Open does.
func OpenToken(ctx context.Context, cfg Config) (h *HSM, err error) {
	cfg = cfg.withDefaults()
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	mod, err := acquireModule(cfg.ModulePath)
	if err != nil {
		return nil, err
	}
	h = &HSM{cfg: cfg, mod: mod, observe: cfg.ObserveCall}
	h.cfg.PIN = ""
	defer func() {
		if err != nil {
			_ = h.Close()
			h = nil
		}
	}()

	if h.slot, err = mod.findSlot(cfg.TokenLabel); err != nil {
		return h, err
	}
	first, err := mod.ctx.OpenSession(h.slot, pkcs11.CKF_SERIAL_SESSION|pkcs11.CKF_RW_SESSION)
	if err != nil {
		return h, fmt.Errorf("%w: C_OpenSession on token %q: %w", ErrModule, cfg.TokenLabel, err)
	}
	if err := mod.login(first, h.slot, cfg.PIN); err != nil {
		_ = mod.ctx.CloseSession(first)
		return h, err
	}
	h.pool, err = newPool(mod, h.slot, cfg.PIN, cfg.Sessions, first)
	if err != nil {
		return h, fmt.Errorf("hsm: opening %d sessions on token %q: %w", cfg.Sessions, cfg.TokenLabel, err)
	}
	err = h.withSession(ctx, func(s *session) error {
		mk, err := h.findMasterKey(s.h)
		if err != nil {
			return err
		}
		h.masterKey = mk
		return nil
	})
	return h, err
}

// Close returns the sessions, logs out and finalises the module once no
// other handle in the process uses it. It waits for operations in flight.
func (h *HSM) Close() error {
	h.closeOnce.Do(func() {
		var errs []error
		if h.pool != nil {
			errs = append(errs, h.pool.close())
		}
		errs = append(errs, h.mod.release())
		h.closeErr = errors.Join(errs...)
	})
	return h.closeErr
}

// HasMasterKey reports whether the handle found or created the master key.
func (h *HSM) HasMasterKey() bool {
	h.mkMu.RLock()
	defer h.mkMu.RUnlock()
	return h.masterKey != 0
}

func (h *HSM) masterKeyHandle() (pkcs11.ObjectHandle, error) {
	h.mkMu.RLock()
	defer h.mkMu.RUnlock()
	if h.masterKey == 0 {
		return 0, ErrNoMasterKey
	}
	return h.masterKey, nil
}

// withSession runs fn on a borrowed session and returns it to the pool.
// When fn fails because the session broke (the module closed it, the device
// went away and came back), the session is replaced and fn runs again; after
// a module-wide failure every pooled session is stale, hence up to size+1
// attempts. Every operation here is safe to repeat: a failed attempt's
// session objects die with its session.
func (h *HSM) withSession(ctx context.Context, fn func(s *session) error) error {
	var err error
	for range h.pool.size + 1 {
		if err = h.withOneSession(ctx, fn); !sessionBroken(err) {
			return err
		}
	}
	return err
}

func (h *HSM) withOneSession(ctx context.Context, fn func(s *session) error) (err error) {
	s, err := h.pool.get(ctx)
	if err != nil {
		return err
	}
	defer func() { h.pool.put(s, err) }()
	return fn(s)
}

// withMasterKey is withSession for operations that use the master key. Some
// modules (SoftHSM among them) invalidate every object handle, token objects
// included, once all sessions of a slot have closed; so when the module
// rejects the handle, the key is looked up again once and fn retried.
func (h *HSM) withMasterKey(ctx context.Context, fn func(s *session, mk pkcs11.ObjectHandle) error) error {
	mk, err := h.masterKeyHandle()
	if err != nil {
		return err
	}
	err = h.withSession(ctx, func(s *session) error { return fn(s, mk) })
	if !staleKeyHandle(err) {
		return err
	}
	if mk, err = h.refreshMasterKey(ctx, mk); err != nil {
		return err
	}
	return h.withSession(ctx, func(s *session) error { return fn(s, mk) })
}

// refreshMasterKey finds the master key again unless another goroutine
// already replaced the stale handle.
func (h *HSM) refreshMasterKey(ctx context.Context, stale pkcs11.ObjectHandle) (pkcs11.ObjectHandle, error) {
	h.mkMu.Lock()
	defer h.mkMu.Unlock()
	if h.masterKey != stale && h.masterKey != 0 {
		return h.masterKey, nil
	}
	err := h.withSession(ctx, func(s *session) error {
		mk, err := h.findMasterKey(s.h)
		h.masterKey = mk
		return err
	})
	if err == nil && h.masterKey == 0 {
		err = fmt.Errorf("%w (label %q on token %q disappeared)", ErrNoMasterKey, h.cfg.MasterKeyLabel, h.cfg.TokenLabel)
	}
	return h.masterKey, err
}

// call times one PKCS#11 operation for the ObserveCall hook.
func (h *HSM) call(op string, fn func() error) error {
	if h.observe == nil {
		return fn()
	}
	start := time.Now()
	err := fn()
	h.observe(op, time.Since(start), err)
	return err
}

// destroy destroys a session object and asks for the session to be recycled
// if that fails, so the object dies with the session instead of lingering.
func (h *HSM) destroy(s *session, obj pkcs11.ObjectHandle) error {
	err := h.call("destroy", func() error { return h.mod.ctx.DestroyObject(s.h, obj) })
	if err != nil {
		s.recycle = true
		return ckrError("C_DestroyObject", err)
	}
	return nil
}

// findObjects returns every object matching tmpl, ending the search on all
// paths because a session with an active search refuses other searches.
func (h *HSM) findObjects(sh pkcs11.SessionHandle, tmpl []*pkcs11.Attribute) ([]pkcs11.ObjectHandle, error) {
	if err := h.mod.ctx.FindObjectsInit(sh, tmpl); err != nil {
		return nil, ckrError("C_FindObjectsInit", err)
	}
	var all []pkcs11.ObjectHandle
	var err error
	for {
		objs, _, ferr := h.mod.ctx.FindObjects(sh, 64)
		if ferr != nil {
			err = ckrError("C_FindObjects", ferr)
			break
		}
		if len(objs) == 0 {
			break
		}
		all = append(all, objs...)
	}
	if ferr := h.mod.ctx.FindObjectsFinal(sh); ferr != nil && err == nil {
		err = ckrError("C_FindObjectsFinal", ferr)
	}
	return all, err
}
