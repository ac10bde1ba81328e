package e2e

import (
	"context"
	"fmt"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/coffer-dev/coffer/client"
)

// TestCrashDuringWrites SIGKILLs the server while many clients write, then
// restarts it and checks that every acknowledged write survived and that no
// secret is half-written: every listed secret describes cleanly and every
// version it lists has its value.
func TestCrashDuringWrites(t *testing.T) {
	dir := t.TempDir()
	n := newNode(t, dir, fmt.Sprintf(`seal "keyfile" { path = %q }`, filepath.Join(dir, "unseal.key")), "")
	n.start()
	out := n.ok("", "operator", "init")
	tok := strings.TrimSpace(strings.SplitN(strings.SplitN(out, "Root token: ", 2)[1], "\n", 2)[0])
	c, err := client.New(client.Config{Address: n.url, Token: tok, Timeout: 5 * time.Second})
	if err != nil {
		t.Fatal(err)
	}

	const writers = 16
	type ack struct {
		name    string
		version int
		value   string
	}
	var (
		mu    sync.Mutex
		acked []ack
		wg    sync.WaitGroup
	)
	ctx, cancel := context.WithCancel(context.Background())
	for w := 0; w < writers; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; ctx.Err() == nil; i++ {
				name := fmt.Sprintf("crash/w%02d/s%d", w, i%5)
				value := fmt.Sprintf("value-%d-%d", w, i)
				// max_versions applies on creation; keep every version so each ack stays checkable.
				r, err := c.Put(ctx, name, client.PutInput{Text: &value, MaxVersions: 1000})
				if err != nil {
					return // the server died under us
				}
				mu.Lock()
				acked = append(acked, ack{name, r.Version, value})
				mu.Unlock()
			}
		}()
	}
	time.Sleep(700 * time.Millisecond)
	n.kill() // SIGKILL mid-write
	cancel()
	wg.Wait()
	if len(acked) < 50 {
		t.Fatalf("only %d writes acknowledged before the crash; the test proves little", len(acked))
	}
	t.Logf("%d writes acknowledged before SIGKILL", len(acked))

	n.start()
	rctx := context.Background()
	for _, a := range acked {
		s, err := c.Get(rctx, a.name, client.Version(a.version))
		if err != nil {
			t.Fatalf("acknowledged %s v%d lost: %v", a.name, a.version, err)
		}
		if s.Text() != a.value {
			t.Fatalf("%s v%d = %q, want %q", a.name, a.version, s.Text(), a.value)
		}
	}
	cursor := ""
	for {
		p, err := c.List(rctx, client.ListOptions{Prefix: "crash/", Cursor: cursor, Limit: 100})
		if err != nil {
			t.Fatal(err)
		}
		for _, it := range p.Items {
			m, err := c.Describe(rctx, it.Name)
			if err != nil {
				t.Fatalf("describe %s: %v", it.Name, err)
			}
			for _, v := range m.Versions {
				if _, err := c.Get(rctx, it.Name, client.Version(v.Version)); err != nil {
					t.Fatalf("%s lists version %d but reading it fails: %v", it.Name, v.Version, err)
				}
			}
			if _, err := c.Get(rctx, it.Name, client.Current()); err != nil {
				t.Fatalf("%s has no readable current version: %v", it.Name, err)
			}
		}
		if p.NextCursor == "" {
			break
		}
		cursor = p.NextCursor
	}
}
