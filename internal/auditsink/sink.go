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
	"net/url"
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
	Dir  string // the audit log directory; cursors are kept here
	Name string // names the cursor file and the lag metric label
	Sink Sink
	// Log returns the open audit log the sink follows, or nil while there
	// is none (the server is sealed); the sink then waits. It is called for
	// every delivery, so a log replaced on unseal is picked up. Required:
	// records are read through Log.NewReader, which returns a record only
	// once it is durable. (Reading the files directly could ship a record
	// whose fsync then failed, a request that was refused, and skip the
	// record that reused its seq.)
	Log      func() *audit.Log
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
	if cfg.Log == nil {
		return nil, fmt.Errorf("audit sink %s: no audit log to follow", cfg.Name)
	}
	r := &Runner{cfg: cfg}
	b, err := os.ReadFile(r.cursorPath())
	switch {
	case err == nil:
		n, perr := strconv.ParseUint(strings.TrimSpace(string(b)), 10, 64)
		if perr != nil {
			// An empty or garbled cursor (say, from a crash of an older
			// version mid-save) loses only the position: start over from
			// the oldest record on disk. The destination gets duplicates,
			// which it must tolerate anyway, but no record is lost.
			cfg.Logger.Warn("audit sink cursor file is unreadable; delivering from the oldest record again",
				"sink", cfg.Name, "file", r.cursorPath(), "error", perr)
			n = 0
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

// saveCursor replaces the cursor file atomically and durably: the new
// contents are fsynced before the rename, and the directory after it, so a
// crash or power loss leaves either the old cursor or the new one.
func (r *Runner) saveCursor(seq uint64) error {
	tmp := r.cursorPath() + ".tmp"
	f, err := os.OpenFile(tmp, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o600)
	if err != nil {
		return err
	}
	_, err = f.WriteString(strconv.FormatUint(seq, 10) + "\n")
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(tmp, r.cursorPath())
	}
	if err != nil {
		os.Remove(tmp)
		return err
	}
	return syncDir(r.cfg.Dir)
}

// syncDir fsyncs a directory so that a rename in it is durable.
func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	err = d.Sync()
	if cerr := d.Close(); err == nil {
		err = cerr
	}
	return err
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

// deliver sends the durable records after the cursor, a batch at a time,
// and returns how many records it delivered.
func (r *Runner) deliver(ctx context.Context) (int, error) {
	l := r.cfg.Log()
	if l == nil {
		return 0, nil // sealed, or not initialized yet: no log to follow
	}
	rd, err := l.NewReader(r.cursor.Load())
	if errors.Is(err, os.ErrNotExist) {
		return 0, nil // the log is not written yet
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
// collector). Any status outside 2xx is a failure to retry. Redirects are
// not followed (a 3xx is a failure too): following one would turn the POST
// into a GET without the batch, whose 200 would count the batch as
// delivered, and would send Headers (API keys) to another address.
type Webhook struct {
	URL     string
	Headers map[string]string // e.g. an Authorization header for the collector
	Client  *http.Client      // default: 10s timeout; its redirect policy is overridden
}

// noRedirect makes a client return a redirect response as it is.
func noRedirect(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }

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
	hc := http.Client{Timeout: 10 * time.Second}
	if s.Client != nil {
		hc = *s.Client
	}
	hc.CheckRedirect = noRedirect
	resp, err := hc.Do(req)
	if err != nil {
		// A *url.Error names the whole URL, whose query may hold the
		// collector's token; name only its host.
		var ue *url.Error
		if errors.As(err, &ue) {
			return fmt.Errorf("POST to the webhook at %s: %w", req.URL.Host, ue.Err)
		}
		return err
	}
	io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10))
	resp.Body.Close()
	switch {
	case resp.StatusCode/100 == 3:
		return fmt.Errorf("webhook answered %d (a redirect): redirects are not followed, configure the collector's final URL", resp.StatusCode)
	case resp.StatusCode/100 != 2:
		return fmt.Errorf("webhook answered %d", resp.StatusCode)
	}
	return nil
}
