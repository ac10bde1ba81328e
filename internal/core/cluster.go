package core

import (
	"context"
	"sync"
	"sync/atomic"
	"time"

	"github.com/coffer-dev/coffer/internal/authz"
	"github.com/coffer-dev/coffer/internal/barrier"
	"github.com/coffer-dev/coffer/internal/cluster"
	"github.com/coffer-dev/coffer/internal/seal"
	"github.com/coffer-dev/coffer/internal/storage"
)

// ClusterView lists the nodes that share this core's storage.
type ClusterView interface {
	Nodes(ctx context.Context) ([]cluster.Status, error)
	IsLeader() bool // this node leads
}

// cacheMaxAge bounds how long a node sharing its storage serves a token or
// the policies from memory. Notifications normally drop changed entries at
// once; this heals a notification that was lost (a listener that had not
// yet noticed its connection was dead).
const cacheMaxAge = 30 * time.Second

// follower keeps a core's caches in step with other nodes' changes.
type follower struct {
	onKeyring func() // called after another node rotated the keyring

	reloading atomic.Bool // a policy reload goroutine runs
	again     atomic.Bool // another reload was asked for while it ran

	mu   sync.Mutex // guards view
	view ClusterView
}

// SetCluster makes ClusterNodes list view's nodes. Call it before serving.
func (c *Core) SetCluster(view ClusterView) {
	c.follow().mu.Lock()
	c.follow().view = view
	c.follow().mu.Unlock()
}

// ClusterNodes lists the nodes sharing this storage. A single server (no
// cluster) is listed alone, as its own leader.
func (c *Core) ClusterNodes(ctx context.Context) ([]cluster.Status, error) {
	f := c.follow()
	f.mu.Lock()
	view := f.view
	f.mu.Unlock()
	if view != nil {
		return view.Nodes(ctx)
	}
	return []cluster.Status{{ID: "local", Sealed: c.Sealed(), Leader: true, Alive: true, Self: true}}, nil
}

// ClusterLeader reports, without touching storage, whether this node shares
// its storage with others (clustered) and whether it leads. A single server
// always leads.
func (c *Core) ClusterLeader() (clustered, leader bool) {
	f := c.follow()
	f.mu.Lock()
	view := f.view
	f.mu.Unlock()
	if view == nil {
		return false, true
	}
	return true, view.IsLeader()
}

func (c *Core) follow() *follower { return &c.cluster }

// Follow subscribes the core to the changes other nodes make to the shared
// storage: a revoked token, a changed secret or policy, a rotated keyring
// stop being served from this node's caches within moments. onKeyring, if
// not nil, is called after another node rotated the keyring (the leader
// starts re-encrypting). Call it once, before serving.
//
// Cached tokens, policies and secret metadata then also expire after
// cacheMaxAge, in case a notification is lost; a single server, which sees
// every change itself, never calls Follow and keeps them until they change.
func (c *Core) Follow(w storage.Watcher, onKeyring func()) {
	c.follow().onKeyring = onKeyring
	c.Tokens.SetMaxAge(cacheMaxAge)
	c.Policies.SetMaxAge(cacheMaxAge)
	c.Secrets.SetMaxAge(cacheMaxAge)
	w.Watch(c.remoteChange)
}

// remoteChange runs on the backend's listener goroutine: it must be quick.
func (c *Core) remoteChange(keys []string) {
	f := c.follow()
	if keys == nil { // anything may have changed
		c.Tokens.Invalidate()
		c.Secrets.Invalidate()
		c.reloadPolicies()
		c.reloadKeyring()
		c.tryAutoUnseal()
		return
	}
	policies, keyring := false, false
	for _, k := range keys {
		c.Tokens.ForgetKey(k)
		c.Secrets.ForgetKey(k)
		policies = policies || authz.IsPolicyKey(k)
		keyring = keyring || k == barrier.KeyringPath
		if k == seal.ConfigPath {
			c.tryAutoUnseal()
		}
	}
	if policies {
		c.reloadPolicies()
	}
	if keyring {
		c.reloadKeyring()
		if f.onKeyring != nil {
			f.onKeyring()
		}
	}
}

// reloadPolicies reloads the policy cache on a goroutine of its own,
// coalescing requests that arrive while a reload runs.
func (c *Core) reloadPolicies() {
	f := c.follow()
	f.again.Store(true)
	if !f.reloading.CompareAndSwap(false, true) {
		return
	}
	go func() {
		defer f.reloading.Store(false)
		for f.again.Swap(false) {
			if c.Sealed() {
				continue // unseal loads them
			}
			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			if err := c.Policies.Load(ctx); err != nil && !c.Sealed() {
				c.log.Warn("reloading policies changed by another node failed; retrying", "error", err)
				f.again.Store(true)
				time.Sleep(time.Second)
			}
			cancel()
		}
	}()
}

func (c *Core) reloadKeyring() {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := c.barrier.Reload(ctx); err != nil {
		c.log.Warn("reloading the keyring rotated by another node failed", "error", err)
	}
}

// tryAutoUnseal unseals a sealed key-file node once another node has
// initialized the shared storage.
func (c *Core) tryAutoUnseal() {
	if !c.Sealed() || c.seal.Type() != seal.TypeKeyFile {
		return
	}
	go func() {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		if err := c.AutoUnseal(ctx); err != nil {
			c.log.Debug("auto-unseal after a change by another node failed", "error", err)
		}
	}()
}
