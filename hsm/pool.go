package hsm

import (
	"context"
	"errors"
	"fmt"
	"sync"

	"github.com/miekg/pkcs11"
)

// session is a pooled PKCS#11 session. A zero handle marks a slot whose
// session was lost and could not be reopened yet; the next borrower retries.
type session struct {
	h pkcs11.SessionHandle
	// recycle asks the pool to close this session instead of reusing it, for
	// example after a failed C_DestroyObject: closing a session destroys its
	// session objects, so a key we could not destroy does not outlive it.
	recycle bool
}

// pool holds a fixed number of logged-in R/W sessions. A buffered channel is
// the whole pool: borrowing receives (blocking, with cancellation) and
// returning sends, so no session is ever used by two goroutines at once,
// which PKCS#11 forbids for operations such as C_SignInit/C_Sign.
type pool struct {
	mod  *module
	slot uint
	pin  string
	size int
	ch   chan *session
	done chan struct{}
	once sync.Once
}

// newPool builds a pool around first, an already logged-in session, and
// opens size-1 more.
func newPool(mod *module, slot uint, pin string, size int, first pkcs11.SessionHandle) (*pool, error) {
	p := &pool{mod: mod, slot: slot, pin: pin, size: size,
		ch: make(chan *session, size), done: make(chan struct{})}
	p.ch <- &session{h: first}
	for i := 1; i < size; i++ {
		h, err := p.open()
		if err != nil {
			// Fill the pool with empty slots so close() can drain it.
			for ; i < size; i++ {
				p.ch <- &session{}
			}
			return p, err
		}
		p.ch <- &session{h: h}
	}
	return p, nil
}

func (p *pool) open() (pkcs11.SessionHandle, error) {
	h, err := p.mod.ctx.OpenSession(p.slot, pkcs11.CKF_SERIAL_SESSION|pkcs11.CKF_RW_SESSION)
	if err != nil {
		return 0, ckrError("C_OpenSession", err)
	}
	return h, nil
}

// get borrows a session, waiting until one is free, ctx ends or the pool closes.
func (p *pool) get(ctx context.Context) (*session, error) {
	select {
	case <-p.done:
		return nil, ErrClosed
	default:
	}
	var s *session
	select {
	case s = <-p.ch:
	case <-ctx.Done():
		return nil, fmt.Errorf("hsm: waiting for a session: %w", context.Cause(ctx))
	case <-p.done:
		return nil, ErrClosed
	}
	select {
	case <-p.done: // closed while we waited; let close() have it
		p.ch <- s
		return nil, ErrClosed
	default:
	}
	if s.h == 0 {
		h, err := p.open()
		if err == nil {
			err = p.mod.relogin(h, p.pin)
			if err != nil {
				_ = p.mod.ctx.CloseSession(h)
			}
		}
		if err != nil {
			p.ch <- s
			return nil, fmt.Errorf("hsm: replacing a lost session: %w", err)
		}
		s.h = h
	}
	return s, nil
}

// put returns s to the pool. When opErr says the session is unusable, or s
// asks for recycling, the session is closed and replaced; a replacement that
// fails leaves an empty slot that the next get retries, so the pool never
// shrinks for good.
func (p *pool) put(s *session, opErr error) {
	if s.recycle || sessionBroken(opErr) {
		_ = p.mod.ctx.CloseSession(s.h) // may fail: it is already gone
		s.recycle = false
		s.h = 0
		select {
		case <-p.done:
			// Closing: leave the slot empty rather than open a session
			// close() would have to close again.
		default:
			if h, err := p.open(); err == nil {
				// If the token lost our login with its sessions, restore it;
				// otherwise this session would fail its first call.
				if err := p.mod.relogin(h, p.pin); err == nil {
					s.h = h
				} else {
					_ = p.mod.ctx.CloseSession(h)
				}
			}
		}
	}
	p.ch <- s
}

// close stops new borrows, waits for borrowed sessions to come back, logs
// out (through the last open session, as C_Logout needs one) and closes all.
func (p *pool) close() error {
	p.once.Do(func() { close(p.done) })
	var open []pkcs11.SessionHandle
	for range p.size {
		if s := <-p.ch; s.h != 0 {
			open = append(open, s.h)
		}
	}
	var errs []error
	var logoutVia pkcs11.SessionHandle // zero: every session is gone, and the login with them
	if len(open) > 0 {
		logoutVia = open[0]
	}
	errs = append(errs, p.mod.logout(logoutVia, p.slot))
	for _, h := range open {
		if err := p.mod.ctx.CloseSession(h); err != nil && !sessionBroken(err) {
			errs = append(errs, ckrError("C_CloseSession", err))
		}
	}
	return errors.Join(errs...)
}
