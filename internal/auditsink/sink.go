// Package auditsink feeds remote audit destinations (stdout for containers,
// syslog, an HTTP webhook for a SIEM) from the durable local audit log. Each
// sink follows the log with its own cursor, persisted beside the log, and
// retries with backoff: a slow or dead destination never stalls requests
// (they only wait for the local log) and never loses a record (it catches up).
package auditsink

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/coffer-dev/coffer/internal/audit"
)

// Sink delivers batches of records to one destination. Send must either
// deliver the whole batch or return an error; a batch may be sent again
// after an error, so destinations should tolerate duplicates (records carry
// their seq).
type Sink interface {
	Send(ctx context.Context, recs []*audit.Record) error
}

// Config configures a Runner.
type Config struct {
	Dir      string // the audit log directory; cursors are kept here
	Name     string // names the cursor file and the lag metric label
	Sink     Sink
	Batch    int           // records per send; default 100
	Poll     time.Duration // how often to look for new records at the end of the log; default 200ms
	MaxRetry time.Duration // backoff cap; default 30s
	Logger   *slog.Logger
}

// Runner follows the log and feeds one sink. Start it with Run; it stops
// when its context ends.
type Runner struct {
	cfg    Config
	cursor atomic.Uint64 // seq of the last record delivered
	errs   atomic.Uint64 // failed sends
}

// New returns a Runner that resumes from the persisted cursor.
func New(cfg Config) (*Runner, error) {
	if cfg.Batch <= 0 {
		cfg.Batch = 100
	}
	if cfg.Poll <= 0 {
		cfg.Poll = 200 * time.Millisecond
	}
	if cfg.MaxRetry <= 0 {
		cfg.MaxRetry = 30 * time.Second
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	r := &Runner{cfg: cfg}
	b, err := os.ReadFile(r.cursorPath())
	switch {
	case err == nil:
		n, perr := strconv.ParseUint(strings.TrimSpace(string(b)), 10, 64)
		if perr != nil {
			return nil, fmt.Errorf("audit sink %s: cursor file is corrupt", cfg.Name)
		}
		r.cursor.Store(n)
	case !errors.Is(err, os.ErrNotExist):
		return nil, err
	}
	return r, nil
}

func (r *Runner) cursorPath() string {
	return filepath.Join(r.cfg.Dir, "sink-"+r.cfg.Name+".cursor")
}

// Cursor returns the seq of the last record delivered.
func (r *Runner) Cursor() uint64 { return r.cursor.Load() }

// Errors counts failed sends.
func (r *Runner) Errors() uint64 { return r.errs.Load() }

func (r *Runner) saveCursor(seq uint64) error {
	tmp := r.cursorPath() + ".tmp"
	if err := os.WriteFile(tmp, []byte(strconv.FormatUint(seq, 10)+"\n"), 0o600); err != nil {
		return err
	}
	return os.Rename(tmp, r.cursorPath())
}

// Run delivers records until ctx ends.
func (r *Runner) Run(ctx context.Context) {
	backoff := 100 * time.Millisecond
	for ctx.Err() == nil {
		n, err := r.deliver(ctx)
		switch {
		case err != nil:
			r.errs.Add(1)
			r.cfg.Logger.Warn("audit sink delivery failed; retrying", "sink", r.cfg.Name, "error", err, "retry_in", backoff)
			sleep(ctx, backoff)
			backoff = min(backoff*2, r.cfg.MaxRetry)
		case n == 0:
			backoff = 100 * time.Millisecond
			sleep(ctx, r.cfg.Poll)
		default:
			backoff = 100 * time.Millisecond
		}
	}
}

func sleep(ctx context.Context, d time.Duration) {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
	case <-t.C:
	}
}

// deliver sends what is after the cursor, a batch at a time, and returns
// how many records it delivered.
func (r *Runner) deliver(ctx context.Context) (int, error) {
	rd, err := audit.NewReader(r.cfg.Dir, r.cursor.Load())
	if errors.Is(err, os.ErrNotExist) {
		return 0, nil // the log is not written yet (server not initialized)
	}
	if err != nil {
		return 0, err
	}
	defer rd.Close()
	total := 0
	for ctx.Err() == nil {
		var batch []*audit.Record
		for len(batch) < r.cfg.Batch {
			rec, err := rd.Next()
			if errors.Is(err, io.EOF) {
				break
			}
			if err != nil {
				return total, err
			}
			batch = append(batch, rec)
		}
		if len(batch) == 0 {
			return total, nil
		}
		sctx, cancel := context.WithTimeout(ctx, 30*time.Second)
		err := r.cfg.Sink.Send(sctx, batch)
		cancel()
		if err != nil {
			return total, err
		}
		last := batch[len(batch)-1].Seq
		if err := r.saveCursor(last); err != nil {
			return total, err
		}
		r.cursor.Store(last)
		total += len(batch)
	}
	return total, nil
}

// Writer sends records as JSON lines to a stream, such as stdout in a container.
type Writer struct {
	mu sync.Mutex // serializes writes
	W  io.Writer
}

// Send implements Sink.
func (s *Writer) Send(_ context.Context, recs []*audit.Record) error {
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	for _, r := range recs {
		if err := enc.Encode(r); err != nil {
			return err
		}
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	_, err := s.W.Write(buf.Bytes())
	return err
}

// Webhook POSTs each batch as a JSON array to a URL (a SIEM's HTTP
// collector). Any status outside 2xx is a failure to retry.
type Webhook struct {
	URL     string
	Headers map[string]string // e.g. an Authorization header for the collector
	Client  *http.Client      // default: 10s timeout
}

// Send implements Sink.
func (s *Webhook) Send(ctx context.Context, recs []*audit.Record) error {
	body, err := json.Marshal(recs)
	if err != nil {
		return err
	}
	req, err := http.NewRequestWithContext(ctx, "POST", s.URL, bytes.NewReader(body))
	if err != nil {
		return err
	}
	req.Header.Set("Content-Type", "application/json")
	for k, v := range s.Headers {
		req.Header.Set(k, v)
	}
	hc := s.Client
	if hc == nil {
		hc = &http.Client{Timeout: 10 * time.Second}
	}
	resp, err := hc.Do(req)
	if err != nil {
		return err
	}
	io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10))
	resp.Body.Close()
	if resp.StatusCode/100 != 2 {
		return fmt.Errorf("webhook answered %d", resp.StatusCode)
	}
	return nil
}
