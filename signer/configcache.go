package signer

import (
	"crypto/sha256"
	"fmt"
	"sync"

	"github.com/taurusgroup/multi-party-sig/protocols/cmp"
)

// configCacheSize bounds the decoded shares kept in memory.
const configCacheSize = 4096

// configCache keeps decoded shares. Decoding one re-checks its Paillier
// primes, which takes milliseconds: too slow for a signature that needs
// one round. The KEK that opens every share is in this process's memory
// anyway, so keeping decoded shares there exposes nothing more. An entry
// is keyed by the sealed blob's hash, so a changed share is never served
// from the cache. The protocols only read a config, so one may serve
// concurrent ceremonies.
type configCache struct {
	mu sync.Mutex
	m  map[string]*cmp.Config
}

func newConfigCache() *configCache { return &configCache{m: map[string]*cmp.Config{}} }

func cacheKey(sh *share) string {
	return fmt.Sprintf("%s#%d#%x", sh.WalletID, sh.KeyEpoch, sha256.Sum256(sh.Sealed))
}

func (c *configCache) get(sh *share) *cmp.Config {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.m[cacheKey(sh)]
}

func (c *configCache) put(sh *share, cfg *cmp.Config) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if len(c.m) >= configCacheSize {
		for k := range c.m { // evict one, any
			delete(c.m, k)
			break
		}
	}
	c.m[cacheKey(sh)] = cfg
}
