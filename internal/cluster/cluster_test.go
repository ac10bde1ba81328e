package cluster_test

import (
	"context"
	"testing"
	"time"

	"github.com/coffer-dev/coffer/internal/cluster"
	"github.com/coffer-dev/coffer/internal/events"
	"github.com/coffer-dev/coffer/internal/storage/postgres"
	"github.com/coffer-dev/coffer/internal/testdb"
)

func TestMain(m *testing.M) { testdb.Main(m) }

func backend(t testing.TB, url string) *postgres.Backend {
	t.Helper()
	b, err := postgres.Open(context.Background(), postgres.Config{URL: url, Timeout: 2 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { b.Close() })
	return b
}

type member struct {
	node   *cluster.Node
	cancel context.CancelFunc
	done   chan struct{}
}

func join(t testing.TB, be *postgres.Backend, id string) *member {
	t.Helper()
	n := cluster.New(cluster.Config{Pool: be.Pool(), ConnConfig: be.ConnConfig(), NodeID: id, APIAddr: "http://" + id,
		Interval: 100 * time.Millisecond, Timeout: time.Second})
	ctx, cancel := context.WithCancel(context.Background())
	m := &member{node: n, cancel: cancel, done: make(chan struct{})}
	go func() { defer close(m.done); n.Run(ctx) }()
	t.Cleanup(m.stop)
	return m
}

func (m *member) stop() { m.cancel(); <-m.done }

func waitFor(t testing.TB, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func leaders(ms ...*member) (n int, who *member) {
	for _, m := range ms {
		if m.node.IsLeader() {
			n, who = n+1, m
		}
	}
	return n, who
}

// TestElection: exactly one of three nodes leads; when it stops another
// takes over, and the registry shows every node and the leader.
func TestElection(t *testing.T) {
	url := testdb.Postgres(t)
	be := backend(t, url)
	ms := []*member{join(t, be, "a"), join(t, be, "b"), join(t, be, "c")}
	waitFor(t, "a leader", func() bool { n, _ := leaders(ms...); return n == 1 })
	time.Sleep(300 * time.Millisecond)
	if n, _ := leaders(ms...); n != 1 {
		t.Fatalf("%d leaders, want 1", n)
	}
	_, old := leaders(ms...)
	ctx, done := old.node.Leader()
	if !done {
		t.Fatal("Leader() = false on the leader")
	}
	waitFor(t, "registry of 3 nodes", func() bool {
		st, err := ms[0].node.Nodes(context.Background())
		nl := 0
		for _, s := range st {
			if s.Leader {
				nl++
			}
		}
		return err == nil && len(st) == 3 && nl == 1
	})
	old.stop()
	if ctx.Err() == nil {
		t.Fatal("the leader's term context outlived its leadership")
	}
	var rest []*member
	for _, m := range ms {
		if m != old {
			rest = append(rest, m)
		}
	}
	start := time.Now()
	waitFor(t, "a new leader", func() bool { n, _ := leaders(rest...); return n == 1 })
	t.Logf("fail-over in %v", time.Since(start))
	st, err := rest[0].node.Nodes(context.Background())
	if err != nil || len(st) != 2 {
		t.Fatalf("Nodes() = %+v, %v, want the 2 remaining", st, err)
	}
}

// TestEventsAcrossNodes: events published on either node reach both buses
// with the same numbers, in the same order.
func TestEventsAcrossNodes(t *testing.T) {
	url := testdb.Postgres(t)
	bes := []*postgres.Backend{backend(t, url), backend(t, url)}
	var buses []*events.Bus
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	for _, be := range bes {
		bus := events.New(nil)
		r := cluster.NewEvents(be, bus, nil)
		go r.Run(ctx)
		buses = append(buses, bus)
	}
	time.Sleep(300 * time.Millisecond) // listeners connect and resync
	for i := 0; i < 10; i++ {
		buses[i%2].Publish(events.Event{Type: events.VersionCreated, Name: "s", Version: i + 1})
	}
	var seen [2][]events.Event
	for i, bus := range buses {
		waitFor(t, "10 events", func() bool {
			evs, _, _, _ := bus.Read(0, 100)
			seen[i] = evs
			return len(evs) == 10
		})
	}
	for j := range seen[0] {
		a, b := seen[0][j], seen[1][j]
		if a.Seq != b.Seq || a.Version != b.Version || (j > 0 && a.Seq != seen[0][j-1].Seq+1) {
			t.Fatalf("event %d: node A %+v, node B %+v", j, a, b)
		}
	}
}

// TestLeaderFollowsLock: when the leader dies, its registry row still looks
// fresh for seconds (a heartbeat just written, leader = true), yet every
// node names the new lock holder as leader as soon as it holds the lock,
// and shows the dead node not alive.
func TestLeaderFollowsLock(t *testing.T) {
	url := testdb.Postgres(t)
	be := backend(t, url)
	ms := []*member{join(t, be, "a"), join(t, be, "b"), join(t, be, "c")}
	waitFor(t, "a leader", func() bool { n, _ := leaders(ms...); return n == 1 })
	_, old := leaders(ms...)
	var pid int32
	waitFor(t, "the leader's session pid in the registry", func() bool {
		err := be.Pool().QueryRow(context.Background(), `SELECT session_pid FROM coffer_nodes WHERE id = $1`, old.node.ID()).Scan(&pid)
		return err == nil && pid != 0
	})
	old.stop() // ends its session (releasing the lock) and deletes its row
	// Put back the row a killed process would have left behind.
	if _, err := be.Pool().Exec(context.Background(), `INSERT INTO coffer_nodes
		(id, api_addr, sealed, leader, version, started_at, heartbeat, session_pid)
		VALUES ($1, 'http://dead', false, true, '', now(), now() + interval '1 hour', $2)`, old.node.ID(), pid); err != nil {
		t.Fatal(err)
	}
	var rest []*member
	for _, m := range ms {
		if m != old {
			rest = append(rest, m)
		}
	}
	waitFor(t, "a new leader", func() bool { n, _ := leaders(rest...); return n == 1 })
	_, lead := leaders(rest...)
	for _, m := range rest {
		deadline := time.Now().Add(time.Second)
		for {
			st, err := m.node.Nodes(context.Background())
			if err != nil {
				t.Fatal(err)
			}
			var named []string
			ghostAlive := false
			for _, s := range st {
				if s.Leader {
					named = append(named, s.ID)
				}
				if s.ID == old.node.ID() {
					ghostAlive = s.Alive
				}
			}
			if len(named) == 1 && named[0] == lead.node.ID() && !ghostAlive {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("node %s: Nodes() names leaders %q (want [%s]), dead node alive = %v", m.node.ID(), named, lead.node.ID(), ghostAlive)
			}
			time.Sleep(20 * time.Millisecond)
		}
	}
}
