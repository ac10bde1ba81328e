package httpapi_test

import (
	"context"
	"net/http"
	"net/http/httptest"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/coffer-dev/coffer/client"
	"github.com/coffer-dev/coffer/internal/core"
	"github.com/coffer-dev/coffer/internal/httpapi"
	"github.com/coffer-dev/coffer/internal/storage"
	"github.com/coffer-dev/coffer/internal/storage/mem"
)

// hookBackend calls after once an update has committed.
type hookBackend struct {
	*mem.Backend
	mu    sync.Mutex
	after func()
}

func (b *hookBackend) Update(ctx context.Context, fn func(storage.Tx) error) error {
	err := b.Backend.Update(ctx, fn)
	b.mu.Lock()
	f := b.after
	b.mu.Unlock()
	if err == nil && f != nil {
		f()
	}
	return err
}

// TestOutcomeFailureNotRetried: when the outcome record of a change fails
// after the change was made (here: the request's context ends right after
// the storage commit), the answer is 503 "audit_outcome_unrecorded", which
// the SDK does not retry; "audit_unavailable", which it does retry, is kept
// for refusals made before anything was done.
func TestOutcomeFailureNotRetried(t *testing.T) {
	ctx := context.Background()
	be := &hookBackend{Backend: mem.New()}
	c := core.New(core.Config{Backend: be, Audit: core.AuditConfig{Dir: t.TempDir()}})
	api := httpapi.New(httpapi.Config{Core: c})
	var armed atomic.Bool
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method == "PUT" && armed.CompareAndSwap(true, false) {
			rctx, cancel := context.WithCancel(r.Context())
			defer cancel()
			be.mu.Lock()
			be.after = func() { cancel() }
			be.mu.Unlock()
			defer func() { be.mu.Lock(); be.after = nil; be.mu.Unlock() }()
			r = r.WithContext(rctx)
		}
		api.ServeHTTP(w, r)
	}))
	defer srv.Close()
	res, err := c.Init(ctx, 1, 1)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := c.Unseal(ctx, res.Keys[0]); err != nil {
		t.Fatal(err)
	}
	defer c.Seal()
	cl, _ := client.New(client.Config{Address: srv.URL, Token: res.RootToken, MinRetryWait: time.Millisecond})
	if _, err := cl.PutText(ctx, "app/key", "v1"); err != nil {
		t.Fatal(err)
	}
	armed.Store(true)
	if _, err := cl.PutText(ctx, "app/key", "v2"); client.ErrorCode(err) != "audit_outcome_unrecorded" {
		t.Errorf("PutText whose outcome record failed = %v, want audit_outcome_unrecorded", err)
	}
	m, err := cl.Describe(ctx, "app/key")
	if err != nil {
		t.Fatal(err)
	}
	if len(m.Versions) != 2 {
		t.Errorf("one PutText made %d new versions", len(m.Versions)-1)
	}
}
