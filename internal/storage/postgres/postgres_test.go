package postgres_test

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/coffer-dev/coffer/internal/storage"
	"github.com/coffer-dev/coffer/internal/storage/postgres"
	"github.com/coffer-dev/coffer/internal/storage/storagetest"
	"github.com/coffer-dev/coffer/internal/testdb"
)

func TestMain(m *testing.M) { testdb.Main(m) }

func open(t testing.TB, url string) *postgres.Backend {
	t.Helper()
	b, err := postgres.Open(context.Background(), postgres.Config{URL: url, Timeout: 2 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { b.Close() })
	return b
}

func TestConformance(t *testing.T) {
	storagetest.Run(t, func(t *testing.T) storage.Backend {
		return open(t, testdb.Postgres(t))
	})
}

func TestSnapshotter(t *testing.T) {
	b := open(t, testdb.Postgres(t))
	want := []string{"a", "a/1", "b", "\xff"}
	if err := b.Update(context.Background(), func(tx storage.Tx) error {
		for _, k := range want {
			if err := tx.Put(k, []byte("v"+k)); err != nil {
				return err
			}
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	var got []string
	err := b.ForEach(context.Background(), func(k string, v []byte) error {
		if string(v) != "v"+k {
			return fmt.Errorf("value of %q = %q", k, v)
		}
		got = append(got, k)
		return nil
	})
	if err != nil || !slices.Equal(got, want) {
		t.Fatalf("ForEach = %q, %v, want %q", got, err, want)
	}
	if l, _ := b.List(context.Background(), "\xff", "", 0); !slices.Equal(l, []string{"\xff"}) {
		t.Fatalf("List(0xff) = %q", l)
	}
}

// TestMigrationsConcurrent opens many backends on one fresh database at once:
// each migration applies exactly once and every Open succeeds.
func TestMigrationsConcurrent(t *testing.T) {
	url := testdb.Postgres(t)
	var wg sync.WaitGroup
	errs := make([]error, 6)
	for i := range errs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			b, err := postgres.Open(context.Background(), postgres.Config{URL: url})
			if err == nil {
				b.Close()
			}
			errs[i] = err
		}()
	}
	wg.Wait()
	for i, err := range errs {
		if err != nil {
			t.Errorf("Open %d = %v", i, err)
		}
	}
}

// TestGroupCommit checks that concurrent writers share transactions.
func TestGroupCommit(t *testing.T) {
	b := open(t, testdb.Postgres(t))
	const n = 200
	var wg sync.WaitGroup
	for i := 0; i < n; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := b.Update(context.Background(), func(tx storage.Tx) error {
				return tx.Put(fmt.Sprintf("g/%03d", i), []byte("v"))
			}); err != nil {
				t.Error(err)
			}
		}()
	}
	wg.Wait()
	commits, writes, _ := b.Stats()
	if writes != n || commits >= n/2 {
		t.Fatalf("Stats() = %d commits for %d writes, want batches of several writes", commits, writes)
	}
	keys, err := b.List(context.Background(), "g/", "", 0)
	if err != nil || len(keys) != n {
		t.Fatalf("List = %d keys, %v, want %d", len(keys), err, n)
	}
	t.Logf("%d writes in %d transactions", writes, commits)
}

// TestNoLostUpdatesAcrossNodes increments counters from two Backends (two
// nodes) on one database: serializable transactions with retry lose none,
// including the race of two nodes creating the same new key.
func TestNoLostUpdatesAcrossNodes(t *testing.T) {
	url := testdb.Postgres(t)
	nodes := []*postgres.Backend{open(t, url), open(t, url)}
	const workers, each = 8, 20
	incr := func(b storage.Backend, key string) error {
		return b.Update(context.Background(), func(tx storage.Tx) error {
			n := 0
			v, err := tx.Get(key)
			switch {
			case errors.Is(err, storage.ErrNotFound):
			case err != nil:
				return err
			default:
				fmt.Sscan(string(v), &n)
			}
			return tx.Put(key, []byte(fmt.Sprint(n+1)))
		})
	}
	var wg sync.WaitGroup
	for w := 0; w < workers; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			b := nodes[w%2]
			for i := 0; i < each; i++ {
				for _, k := range []string{"shared", fmt.Sprintf("new/%d", i)} {
					if err := incr(b, k); err != nil {
						t.Error(err)
						return
					}
				}
			}
		}()
	}
	wg.Wait()
	for _, k := range []string{"shared", "new/0", "new/19"} {
		want := workers * each
		if k != "shared" {
			want = workers
		}
		v, err := nodes[0].Get(context.Background(), k)
		if err != nil || string(v) != fmt.Sprint(want) {
			t.Errorf("Get(%q) = %q, %v, want %d", k, v, err, want)
		}
	}
	_, _, r0 := nodes[0].Stats()
	_, _, r1 := nodes[1].Stats()
	t.Logf("retries after conflicts: %d + %d", r0, r1)
}

// TestWatch checks that a node hears of the keys another node changed, and
// not of its own.
func TestWatch(t *testing.T) {
	url := testdb.Postgres(t)
	a, b := open(t, url), open(t, url)
	got := make(chan []string, 10)
	b.Watch(func(keys []string) { got <- keys })
	own := make(chan []string, 10)
	a.Watch(func(keys []string) { own <- keys })
	for _, ch := range []chan []string{got, own} {
		select {
		case keys := <-ch: // the listener connected
			if keys != nil {
				t.Fatalf("first Watch call = %q, want nil", keys)
			}
		case <-time.After(2 * time.Second):
			t.Fatal("the listener did not connect")
		}
	}
	if err := a.Update(context.Background(), func(tx storage.Tx) error {
		tx.Put("w/1", []byte("x"))
		return tx.Delete("w/2")
	}); err != nil {
		t.Fatal(err)
	}
	select {
	case keys := <-got:
		if !slices.Equal(keys, []string{"w/1", "w/2"}) {
			t.Fatalf("Watch got %q, want [w/1 w/2]", keys)
		}
	case <-time.After(2 * time.Second):
		t.Fatal("no notification within 2s")
	}
	select {
	case keys := <-own:
		t.Fatalf("a was told of its own write: %q", keys)
	case <-time.After(100 * time.Millisecond):
	}
}

// TestDatabaseRestart stops PostgreSQL under a backend: operations fail
// promptly with ErrUnavailable, and work again once it is back, with a
// "everything changed" notification to watchers.
func TestDatabaseRestart(t *testing.T) {
	srv, err := testdb.StartPostgres()
	if err != nil {
		t.Skipf("cannot start a private PostgreSQL: %v", err)
	}
	t.Cleanup(srv.Remove)
	b := open(t, srv.URL)
	lost := make(chan []string, 10)
	b.Watch(func(keys []string) { lost <- keys })
	<-lost // the listener connected
	if err := b.Update(context.Background(), func(tx storage.Tx) error { return tx.Put("k", []byte("v")) }); err != nil {
		t.Fatal(err)
	}
	srv.Stop()
	start := time.Now()
	_, err = b.Get(context.Background(), "k")
	if !errors.Is(err, storage.ErrUnavailable) {
		t.Fatalf("Get while down = %v, want ErrUnavailable", err)
	}
	err = b.Update(context.Background(), func(tx storage.Tx) error { return tx.Put("k", []byte("w")) })
	if !errors.Is(err, storage.ErrUnavailable) {
		t.Fatalf("Update while down = %v, want ErrUnavailable", err)
	}
	if d := time.Since(start); d > 5*time.Second {
		t.Fatalf("failing took %v", d)
	}
	if err := srv.Start(); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(10 * time.Second)
	for {
		v, err := b.Get(context.Background(), "k")
		if err == nil && string(v) == "v" {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("Get after restart = %q, %v", v, err)
		}
		time.Sleep(100 * time.Millisecond)
	}
	if err := b.Update(context.Background(), func(tx storage.Tx) error { return tx.Put("k", []byte("w")) }); err != nil {
		t.Fatalf("Update after restart = %v", err)
	}
	select {
	case keys := <-lost:
		if keys != nil {
			t.Fatalf("after reconnect Watch got %q, want nil (everything)", keys)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("no everything-changed notification after the reconnect")
	}
}
