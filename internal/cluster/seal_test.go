package cluster_test

import (
	"context"
	"sync/atomic"
	"testing"
	"time"

	"github.com/coffer-dev/coffer/internal/cluster"
	"github.com/coffer-dev/coffer/internal/storage/postgres"
	"github.com/coffer-dev/coffer/internal/testdb"
)

// joinSealable starts a node whose seal state is *sealed, with the given
// campaign interval.
func joinSealable(t testing.TB, be *postgres.Backend, id string, sealed *atomic.Bool, interval time.Duration) *member {
	t.Helper()
	n := cluster.New(cluster.Config{Pool: be.Pool(), ConnConfig: be.ConnConfig(), NodeID: id, APIAddr: "http://" + id,
		Interval: interval, Timeout: time.Second, Sealed: sealed.Load})
	ctx, cancel := context.WithCancel(context.Background())
	m := &member{node: n, cancel: cancel, done: make(chan struct{})}
	go func() { defer close(m.done); n.Run(ctx) }()
	t.Cleanup(m.stop)
	return m
}

// lockHolders counts the sessions holding the leader lock.
func lockHolders(t testing.TB, be *postgres.Backend) int {
	t.Helper()
	var n int
	err := be.Pool().QueryRow(context.Background(), `SELECT count(*) FROM pg_locks
		WHERE locktype = 'advisory' AND granted AND objsubid = 1 AND classid::bigint = $1 AND objid::bigint = $2
			AND database = (SELECT oid FROM pg_database WHERE datname = current_database())`,
		cluster.LockKey>>32, cluster.LockKey&0xffffffff).Scan(&n)
	if err != nil {
		t.Fatal(err)
	}
	return n
}

// TestSealedNodeDoesNotCampaign: a sealed node, even alone, never takes the
// leader lock (it could not run the leader's jobs), so an unsealed node that
// joins later leads; once unsealed, the node may lead again.
func TestSealedNodeDoesNotCampaign(t *testing.T) {
	be := backend(t, testdb.Postgres(t))
	var sealed atomic.Bool
	sealed.Store(true)
	s := joinSealable(t, be, "sealed", &sealed, 100*time.Millisecond)
	time.Sleep(time.Second) // ten campaign intervals, alone
	if s.node.IsLeader() || lockHolders(t, be) != 0 {
		t.Fatalf("a sealed node alone: leader = %v, lock holders = %d; want no leader", s.node.IsLeader(), lockHolders(t, be))
	}
	u := join(t, be, "unsealed")
	waitFor(t, "the unsealed node to lead", u.node.IsLeader)
	if s.node.IsLeader() {
		t.Fatal("the sealed node leads too")
	}
	st, err := u.node.Nodes(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	for _, x := range st {
		if x.Leader != (x.ID == "unsealed") {
			t.Fatalf("registry: %+v; want only the unsealed node leading", st)
		}
	}
	// Unsealed, the node campaigns again: it takes over when the other goes.
	sealed.Store(false)
	u.stop()
	waitFor(t, "the unsealed node to lead", s.node.IsLeader)
}

// TestLeaderStepsDownOnSeal: a leader that is sealed ends its term and
// releases the lock promptly, without waiting for its (long) campaign
// interval, so an unsealed node takes over.
func TestLeaderStepsDownOnSeal(t *testing.T) {
	be := backend(t, testdb.Postgres(t))
	var sealed atomic.Bool
	a := joinSealable(t, be, "a", &sealed, time.Minute)
	waitFor(t, "a to lead", a.node.IsLeader)
	term, _ := a.node.Leader()
	b := join(t, be, "b")
	time.Sleep(300 * time.Millisecond)
	if b.node.IsLeader() {
		t.Fatal("b leads while a holds the lock")
	}
	start := time.Now()
	sealed.Store(true)
	waitFor(t, "the sealed leader to step down", func() bool { return !a.node.IsLeader() })
	if term.Err() == nil {
		t.Fatal("the sealed leader's term context was not cancelled")
	}
	waitFor(t, "b to take over", b.node.IsLeader)
	if d := time.Since(start); d > 2*time.Second {
		t.Fatalf("fail-over after the seal took %v, want under 2s", d)
	}
	t.Logf("fail-over after the seal in %v", time.Since(start))
	if a.node.IsLeader() {
		t.Fatal("two leaders")
	}
	// Unsealed again, a campaigns at once (not after a minute) and takes
	// the lock when b goes.
	sealed.Store(false)
	b.stop()
	start = time.Now()
	waitFor(t, "the unsealed node to lead again", a.node.IsLeader)
	t.Logf("unsealed node took over in %v", time.Since(start))
}
