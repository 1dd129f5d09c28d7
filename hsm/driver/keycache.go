package driver

import (
	"context"
	"sync"
)

// keyCacheSize bounds the wrapped keys a driver keeps in memory.
const keyCacheSize = 4096

// keyCache keeps wrapped keys read from the driver database, so that a
// wallet signing often costs one database read per driver, not one per
// signature. A stored key never changes (the database refuses a second key
// for a wallet), and a wrapped key is ciphertext under the HSM's master
// key, so holding it in memory reveals no more than the database does.
type keyCache struct {
	keys *KeyStore
	mu   sync.Mutex
	m    map[string]*WrappedKey
}

func newKeyCache(keys *KeyStore) *keyCache {
	return &keyCache{keys: keys, m: make(map[string]*WrappedKey)}
}

// Get returns the wallet's wrapped key, from memory when it was read
// before. Callers must not modify it.
func (c *keyCache) Get(ctx context.Context, walletID string) (*WrappedKey, error) {
	c.mu.Lock()
	k, ok := c.m[walletID]
	c.mu.Unlock()
	if ok {
		return k, nil
	}
	k, err := c.keys.Get(ctx, walletID)
	if err != nil {
		return nil, err
	}
	c.mu.Lock()
	if len(c.m) >= keyCacheSize {
		clear(c.m) // crude, but bounded; hot wallets come back at once
	}
	c.m[walletID] = k
	c.mu.Unlock()
	return k, nil
}
