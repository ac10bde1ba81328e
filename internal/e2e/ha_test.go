package e2e

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/coffer-dev/coffer/client"
	"github.com/coffer-dev/coffer/internal/testdb"
)

// haCluster is three coffer processes sharing one private PostgreSQL.
type haCluster struct {
	t     *testing.T
	pg    *testdb.Server
	nodes []*node
	snaps string // the snapshot directory the nodes share
	root  string
}

func startHA(t *testing.T) *haCluster {
	t.Helper()
	pg, err := testdb.StartPostgres()
	if err != nil {
		if os.Getenv("COFFER_REQUIRE_DB") == "1" {
			t.Fatalf("PostgreSQL is required (COFFER_REQUIRE_DB=1): %v", err)
		}
		t.Skipf("cannot start a private PostgreSQL: %v", err)
	}
	t.Cleanup(pg.Remove)
	dir := t.TempDir()
	h := &haCluster{t: t, pg: pg, snaps: filepath.Join(dir, "snapshots")}
	keyFile := filepath.Join(dir, "unseal.key") // one key file, as if copied to each node
	for i := 1; i <= 3; i++ {
		addr := freeAddr(t)
		ndir := filepath.Join(dir, fmt.Sprintf("n%d", i))
		cfg := fmt.Sprintf(`
listener "tcp" { address = %q }
storage "postgres" {
  timeout = "2s"
}
cluster { node_id = "n%d" }
seal "keyfile" { path = %q }
audit { path = %q }
snapshot {
  path     = %q
  interval = "6s"
  retain   = 100
}
`, addr, i, keyFile, filepath.Join(ndir, "audit"), h.snaps)
		if err := os.MkdirAll(ndir, 0o700); err != nil {
			t.Fatal(err)
		}
		path := filepath.Join(ndir, "coffer.hcl")
		if err := os.WriteFile(path, []byte(cfg), 0o600); err != nil {
			t.Fatal(err)
		}
		n := &node{t: t, config: path, addr: addr, url: "http://" + addr}
		// The URL comes from the environment, as the HA guide recommends.
		n.env = append(os.Environ(), "COFFER_ADDR="+n.url, "XDG_CONFIG_HOME="+filepath.Join(ndir, "home"), "COFFER_TOKEN=",
			"COFFER_POSTGRES_URL="+pg.URL, "COFFER_FAILPOINT_SNAPSHOT_HOLD=2s")
		h.nodes = append(h.nodes, n)
	}
	h.nodes[0].startEnv()
	out := h.nodes[0].ok("", "operator", "init")
	h.root = strings.TrimSpace(strings.SplitN(strings.SplitN(out, "Root token: ", 2)[1], "\n", 2)[0])
	for _, n := range h.nodes[1:] {
		n.startEnv()
	}
	for _, n := range h.nodes {
		n.setToken(h.root)
		waitUntil(t, 10*time.Second, n.addr+" unsealed and ready", func() bool { return n.status("/v1/sys/health/ready") == 200 })
	}
	return h
}

// startEnv is start with the node's environment (the postgres URL).
func (n *node) startEnv() {
	n.t.Helper()
	n.startWith(n.env)
}

// status returns the HTTP status of an unauthenticated GET.
func (n *node) status(path string) int {
	resp, err := http.Get(n.url + path)
	if err != nil {
		return 0
	}
	resp.Body.Close()
	return resp.StatusCode
}

func (h *haCluster) client(n *node, token string) *client.Client {
	c, err := client.New(client.Config{Address: n.url, Token: token, Timeout: 3 * time.Second, MaxRetries: -1})
	if err != nil {
		h.t.Fatal(err)
	}
	return c
}

func waitUntil(t testing.TB, limit time.Duration, what string, cond func() bool) time.Duration {
	t.Helper()
	start := time.Now()
	for !cond() {
		if time.Since(start) > limit {
			t.Fatalf("not %s within %v", what, limit)
		}
		time.Sleep(20 * time.Millisecond)
	}
	return time.Since(start)
}

func statusOf(err error) int {
	var e *client.Error
	if errors.As(err, &e) {
		return e.StatusCode
	}
	return 0
}

// leader returns the node the cluster names leader, asking n.
func (h *haCluster) leader(n *node) *node {
	c := h.client(n, h.root)
	cl, err := c.Cluster(context.Background())
	if err != nil || cl.Leader == "" {
		return nil
	}
	for i, m := range h.nodes {
		if cl.Leader == fmt.Sprintf("n%d", i+1) && m.cmd != nil {
			return m
		}
	}
	return nil
}

// TestHA runs three nodes on one PostgreSQL: writes on one are read on the
// others, a revoked token is refused everywhere within a second, events
// reach subscribers on any node, the leader is killed during scheduled work
// and another completes it exactly once, and PostgreSQL restarts under the
// nodes, which answer 503 meanwhile and recover by themselves.
func TestHA(t *testing.T) {
	h := startHA(t)
	ctx := context.Background()
	n1, n2, n3 := h.nodes[0], h.nodes[1], h.nodes[2]
	c1, c2, c3 := h.client(n1, h.root), h.client(n2, h.root), h.client(n3, h.root)

	t.Run("WriteOneReadOthers", func(t *testing.T) {
		v := "s3cr3t"
		if _, err := c1.Put(ctx, "ha/db", client.PutInput{Text: &v}); err != nil {
			t.Fatal(err)
		}
		for i, c := range []*client.Client{c2, c3} {
			s, err := c.Get(ctx, "ha/db", client.Current())
			if err != nil || s.Text() != v {
				t.Fatalf("node %d: Get = %v, %v", i+2, s, err)
			}
		}
		// A new version written on n2 is read on n3 (whose metadata cache
		// held version 1) and on n1.
		v2 := "rotated"
		if _, err := c2.Put(ctx, "ha/db", client.PutInput{Text: &v2}); err != nil {
			t.Fatal(err)
		}
		for i, c := range []*client.Client{c3, c1} {
			waitUntil(t, time.Second, fmt.Sprintf("version 2 on client %d", i), func() bool {
				s, err := c.Get(ctx, "ha/db", client.Current())
				return err == nil && s.Text() == v2
			})
		}
	})

	t.Run("RotateKeyOnOneNode", func(t *testing.T) {
		if _, err := c2.RotateKey(ctx); err != nil {
			t.Fatal(err)
		}
		v := "after-rotation"
		if _, err := c2.Put(ctx, "ha/rotated", client.PutInput{Text: &v}); err != nil {
			t.Fatal(err)
		}
		for i, c := range []*client.Client{c1, c3} {
			s, err := c.Get(ctx, "ha/rotated", client.Current())
			if err != nil || s.Text() != v {
				t.Fatalf("client %d: Get of a record on the new term = %v, %v", i, s, err)
			}
		}
	})

	t.Run("RevokeRefusedEverywhere", func(t *testing.T) {
		v := "guarded"
		if _, err := c1.Put(ctx, "ha/guarded", client.PutInput{Text: &v}); err != nil {
			t.Fatal(err)
		}
		tok, err := c1.CreateToken(ctx, client.TokenCreateInput{DisplayName: "ha", TTL: "1h"})
		if err != nil {
			t.Fatal(err)
		}
		users := []*client.Client{h.client(n1, tok.Token), h.client(n2, tok.Token), h.client(n3, tok.Token)}
		for i, u := range users { // every node now has it cached
			if _, err := u.Get(ctx, "ha/guarded", client.Current()); err != nil {
				t.Fatalf("node %d: token refused before revocation: %v", i+1, err)
			}
		}
		if err := c1.RevokeAccessor(ctx, tok.Info.Accessor); err != nil {
			t.Fatal(err)
		}
		for i, u := range users[1:] {
			d := waitUntil(t, time.Second, fmt.Sprintf("revoked token refused on node %d", i+2), func() bool {
				_, err := u.Get(ctx, "ha/guarded", client.Current())
				return statusOf(err) == http.StatusUnauthorized
			})
			t.Logf("node %d refused the revoked token after %v", i+2, d)
		}
	})

	t.Run("EventsOnAnyNode", func(t *testing.T) {
		sctx, cancel := context.WithTimeout(ctx, 5*time.Second)
		defer cancel()
		got := make(chan client.Event, 16)
		var wg sync.WaitGroup
		wg.Add(1)
		go func() {
			defer wg.Done()
			c3.Subscribe(sctx, "ha/", "", func(e client.Event) { got <- e })
		}()
		time.Sleep(300 * time.Millisecond) // subscribed
		v := "evented"
		if _, err := c1.Put(ctx, "ha/event", client.PutInput{Text: &v}); err != nil {
			t.Fatal(err)
		}
		select {
		case e := <-got:
			if e.Name != "ha/event" || e.Type != "version_created" {
				t.Fatalf("event on n3 = %+v", e)
			}
		case <-sctx.Done():
			t.Fatal("a write on n1 produced no event for a subscriber on n3")
		}
		cancel()
		wg.Wait()
	})

	t.Run("StatusShowsEveryNode", func(t *testing.T) {
		waitUntil(t, 5*time.Second, "a leader", func() bool { return h.leader(n2) != nil })
		out := n2.ok("", "status")
		for _, want := range []string{"Leader:       n", "n1", "n2 (this)", "n3", "SEALED"} {
			if !strings.Contains(out, want) {
				t.Fatalf("coffer status lacks %q:\n%s", want, out)
			}
		}
		// Without a token: no node list (host names, addresses), only
		// whether this node leads.
		if s := n2.status("/v1/sys/cluster"); s != http.StatusUnauthorized {
			t.Fatalf("GET /v1/sys/cluster without a token = %d, want 401", s)
		}
		for _, n := range h.nodes {
			ls, err := h.client(n, "").Leader(ctx)
			if err != nil || !ls.Clustered || ls.Leader != (h.leader(n) == n) {
				t.Fatalf("%s: Leader() = %+v, %v; the cluster names %v", n.addr, ls, err, h.leader(n))
			}
		}
		cmd := exec.Command(binary, "status")
		cmd.Env = append(append([]string(nil), n2.env...), "COFFER_TOKEN=")
		raw, err := cmd.Output()
		if out := string(raw); err != nil || !strings.Contains(out, "Leader:       ") || strings.Contains(out, "n1") || strings.Contains(out, "ADDRESS") {
			t.Fatalf("coffer status without a token = %v:\n%s", err, out)
		}
	})

	t.Run("ListenerTerminated", func(t *testing.T) {
		// Every node's listening session ends (as when PostgreSQL kills
		// idle sessions): each reconnects, drops its caches, and a
		// revocation on n1 is still refused on the others within a second.
		tok, err := c1.CreateToken(ctx, client.TokenCreateInput{DisplayName: "listener", TTL: "1h"})
		if err != nil {
			t.Fatal(err)
		}
		users := []*client.Client{h.client(n2, tok.Token), h.client(n3, tok.Token)}
		for i, u := range users {
			if _, err := u.Get(ctx, "ha/guarded", client.Current()); err != nil {
				t.Fatalf("node %d: token refused before revocation: %v", i+2, err)
			}
		}
		conn, err := pgx.Connect(ctx, h.pg.URL)
		if err != nil {
			t.Fatal(err)
		}
		defer conn.Close(ctx)
		var ended int
		if err := conn.QueryRow(ctx, `SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity
			WHERE application_name = 'coffer listener'`).Scan(&ended); err != nil || ended != 3 {
			t.Fatalf("terminated %d listening sessions, %v; want 3", ended, err)
		}
		time.Sleep(500 * time.Millisecond) // the listeners reconnect
		if err := c1.RevokeAccessor(ctx, tok.Info.Accessor); err != nil {
			t.Fatal(err)
		}
		for i, u := range users {
			waitUntil(t, time.Second, fmt.Sprintf("revoked token refused on node %d", i+2), func() bool {
				_, err := u.Get(ctx, "ha/guarded", client.Current())
				return statusOf(err) == http.StatusUnauthorized
			})
		}
	})

	t.Run("KillLeaderDuringScheduledSnapshot", func(t *testing.T) {
		// Each scheduled snapshot holds 2s before it is renamed into place
		// (a failpoint). Wait until the leader is inside one, kill it.
		var lead *node
		var slotStart time.Time
		waitUntil(t, 10*time.Second, "a scheduled snapshot in progress", func() bool {
			tmps, _ := filepath.Glob(filepath.Join(h.snaps, ".snapshot-*"))
			lead = h.leader(n1)
			slotStart = time.Now().UTC().Truncate(6 * time.Second)
			final := filepath.Join(h.snaps, "coffer-"+slotStart.Format("20060102T150405.000Z")+".snapshot")
			_, err := os.Stat(final)
			return len(tmps) > 0 && lead != nil && os.IsNotExist(err) && time.Since(slotStart) < 2*time.Second
		})
		lead.kill()
		t.Logf("killed leader %s during the snapshot of slot %s", lead.addr, slotStart.Format(time.TimeOnly))
		var rest []*node
		for _, n := range h.nodes {
			if n != lead {
				rest = append(rest, n)
			}
		}
		// The registry names the new lock holder at once (pg_locks), not
		// when the dead leader's heartbeat has gone stale (about 7 s).
		d := waitUntil(t, 3*time.Second, "a new leader", func() bool { l := h.leader(rest[0]); return l != nil && l != lead })
		t.Logf("new leader elected after %v", d)
		waitUntil(t, time.Second, "both survivors naming the same new leader", func() bool {
			l := h.leader(rest[1])
			return l != nil && l == h.leader(rest[0])
		})
		name := "coffer-" + slotStart.Format("20060102T150405.000Z") + ".snapshot"
		final := filepath.Join(h.snaps, name)
		waitUntil(t, 5*time.Second, "the interrupted snapshot completed by the new leader", func() bool {
			_, err := os.Stat(final)
			return err == nil
		})
		if fi, _ := os.Stat(final); fi.Size() == 0 {
			t.Fatal("the snapshot is empty")
		}
		// The old leader is gone; stop the others (their logs become
		// readable) after the slot has ended, and count who wrote it.
		time.Sleep(time.Until(slotStart.Add(6 * time.Second)))
		writes := 0
		for _, n := range rest {
			n.stopQuiet()
			writes += strings.Count(n.log.String(), `scheduled snapshot written" path=`+final)
			n.startEnv()
		}
		if writes != 1 {
			t.Fatalf("slot %s written %d times by the surviving nodes, want exactly once", name, writes)
		}
		lead.startEnv() // back as a follower
		for _, n := range h.nodes {
			waitUntil(t, 10*time.Second, n.addr+" ready again", func() bool { return n.status("/v1/sys/health/ready") == 200 })
		}
	})

	t.Run("PostgresRestart", func(t *testing.T) {
		h.pg.Stop()
		down := time.Now()
		for i, n := range h.nodes {
			_, err := h.client(n, h.root).Get(ctx, "ha/db", client.Current())
			if statusOf(err) != http.StatusServiceUnavailable {
				t.Fatalf("node %d with PostgreSQL down: Get = %v, want 503", i+1, err)
			}
			if s := n.status("/v1/sys/health/ready"); s != http.StatusServiceUnavailable {
				t.Fatalf("node %d ready = %d with PostgreSQL down, want 503", i+1, s)
			}
		}
		t.Logf("all nodes answered 503 within %v", time.Since(down))
		if err := h.pg.Start(); err != nil {
			t.Fatal(err)
		}
		up := time.Now()
		for i, n := range h.nodes {
			c := h.client(n, h.root)
			waitUntil(t, 15*time.Second, fmt.Sprintf("node %d serving again", i+1), func() bool {
				s, err := c.Get(ctx, "ha/db", client.Current())
				return err == nil && s.Text() == "rotated"
			})
		}
		t.Logf("all nodes recovered %v after PostgreSQL came back", time.Since(up))
		v := "after-restart"
		if _, err := c3.Put(ctx, "ha/after", client.PutInput{Text: &v}); err != nil {
			t.Fatal(err)
		}
		if s, err := c1.Get(ctx, "ha/after", client.Current()); err != nil || s.Text() != v {
			t.Fatalf("write after restart not read on n1: %v, %v", s, err)
		}
		waitUntil(t, 10*time.Second, "a leader after the restart", func() bool { return h.leader(n1) != nil })
	})
}

// startWith starts the server process with env (nil: the test's own) and
// waits for its listener.
func (n *node) startWith(env []string) {
	n.t.Helper()
	n.log = &bytes.Buffer{}
	n.cmd = exec.Command(binary, "server", "--config", n.config)
	n.cmd.Env = env
	n.cmd.Stdout, n.cmd.Stderr = n.log, n.log
	if err := n.cmd.Start(); err != nil {
		n.t.Fatal(err)
	}
	n.t.Cleanup(func() { n.kill() })
	deadline := time.Now().Add(10 * time.Second)
	for time.Now().Before(deadline) {
		if c, err := net.DialTimeout("tcp", n.addr, 100*time.Millisecond); err == nil {
			c.Close()
			return
		}
		time.Sleep(20 * time.Millisecond)
	}
	n.t.Fatalf("server did not start listening on %s:\n%s", n.addr, n.log)
}

// stopQuiet stops the server with SIGTERM and waits for it to exit.
func (n *node) stopQuiet() {
	if n.cmd == nil {
		return
	}
	n.cmd.Process.Signal(syscall.SIGTERM)
	n.cmd.Wait()
	n.cmd = nil
}
