package audit

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"time"
)

// maxKeptBuf bounds the line buffer the writer keeps between batches.
const maxKeptBuf = 4 << 20

// run is the writer goroutine: it takes whatever Appends are queued, writes
// them with one write and one fsync, and repeats. Appends that arrive during
// an fsync form the next batch (group commit). It exits after Close.
func (l *Log) run() {
	defer close(l.done)
	var batch []*pending
	prev := 1 // size of the last batch: how many appenders are likely about
	for {
		select {
		case <-l.wake:
			l.linger(prev)
			batch = l.take(batch)
			prev = max(len(batch), 1)
			l.commit(batch)
		case <-l.stop:
			// closed is set, so the queue can only shrink now.
			for batch = l.take(batch); len(batch) > 0; batch = l.take(batch) {
				l.commit(batch)
			}
			l.closeErr = l.shutdown()
			return
		}
	}
}

// maxLinger bounds how long a batch waits for more appenders to join it.
const maxLinger = 500 * time.Microsecond

// linger waits, at most maxLinger, until as many Appends are queued as the
// last batch held: callers whose records were just made durable are on
// their way back with the next ones, and sharing this fsync is cheaper than
// paying for another. A lone appender (prev 1) never waits. While it waits,
// Appends signal wake only once the queue is that long (see wakeAt), so a
// lingering writer costs neither CPU nor a wake-up per record.
func (l *Log) linger(prev int) {
	if prev <= 1 || maxLinger <= 0 {
		return
	}
	l.mu.Lock()
	ready := len(l.queue) >= prev
	if !ready {
		l.wakeAt = prev
	}
	l.mu.Unlock()
	if ready {
		return
	}
	timer := time.NewTimer(maxLinger)
	for !ready {
		select {
		case <-l.wake:
			// A signal from before wakeAt was raised may still be here.
			l.mu.Lock()
			ready = len(l.queue) >= prev
			l.mu.Unlock()
		case <-timer.C:
			ready = true
		case <-l.stop:
			ready = true
		}
	}
	timer.Stop()
	l.mu.Lock()
	l.wakeAt = 1
	l.mu.Unlock()
}

// take returns the queued Appends, reusing prev's array for the next queue.
func (l *Log) take(prev []*pending) []*pending {
	clear(prev)
	l.mu.Lock()
	q := l.queue
	l.queue = prev[:0]
	l.mu.Unlock()
	return q
}

// commit makes batch durable in order, adding checkpoints and rotating as
// needed, and reports each outcome. After a failure the chain head and the
// file are rolled back to the last durable record, so the failed records
// leave no trace and the next attempt continues the chain.
func (l *Log) commit(batch []*pending) {
	if len(batch) == 0 {
		return
	}
	w := &l.w
	if err := l.recover(); err != nil {
		l.fail(batch, err)
		return
	}
	now := l.now()
	work := w.c // advanced as lines are added; becomes w.c once durable
	buf := w.buf[:0]
	done := 0 // batch[:done] are durable and reported
	byAge := w.size > 0 && now.Sub(w.created) >= l.opts.MaxFileAge
	for i, p := range batch {
		used := w.size + int64(len(buf))
		if used > 0 && (byAge || used+int64(lineLen(work.seq+1, p.body, len(work.hash))) > l.opts.MaxFileBytes) {
			byAge = false
			if work.lastType != TypeCheckpoint {
				buf = work.appendCheckpoint(buf, now, l.opts.SigningKey, l.keyID)
			}
			if err := l.flush(buf); err != nil {
				l.fail(batch[done:], err)
				return
			}
			w.c = work
			l.succeed(batch[done:i])
			done = i
			buf = buf[:0]
			if err := l.rotate(now); err != nil {
				l.fail(batch[i:], err)
				return
			}
		}
		p.prev = work.hash
		buf = work.appendLine(buf, p.body, p.typ)
		p.seq, p.hash = work.seq, work.hash
		if work.sinceCheckpoint >= l.opts.CheckpointEvery {
			buf = work.appendCheckpoint(buf, now, l.opts.SigningKey, l.keyID)
		}
	}
	if err := l.flush(buf); err != nil {
		l.fail(batch[done:], err)
		return
	}
	w.c = work
	l.succeed(batch[done:])
	if cap(buf) <= maxKeptBuf {
		w.buf = buf[:0]
	}
}

// succeed publishes the durable chain head and reports success to ps.
func (l *Log) succeed(ps []*pending) {
	l.lastSeq.Store(l.w.c.seq)
	if l.Healthy() != nil {
		l.setHealth(nil)
	}
	for _, p := range ps {
		p.done <- nil
	}
}

// fail records a failed write attempt and reports it to ps.
func (l *Log) fail(ps []*pending, err error) {
	err = unavailable(err)
	l.setHealth(err)
	for _, p := range ps {
		p.done <- err
	}
}

// flush writes buf at the end of the chain and fsyncs. On failure it marks
// the file dirty, so that recover truncates whatever part of buf reached it.
func (l *Log) flush(buf []byte) error {
	w := &l.w
	if len(buf) == 0 {
		return nil
	}
	w.reserve(w.size + int64(len(buf)))
	_, err := w.f.WriteAt(buf, w.size)
	if err == nil {
		if l.opts.beforeSync != nil {
			l.opts.beforeSync()
		}
		err = syncData(w.f)
		l.syncs.Add(1)
	}
	if err != nil {
		w.dirty = true
		w.limit = max(w.limit, w.size+int64(len(buf)))
		// Best effort now, so readers see the garbage briefly; recover
		// reopens and truncates again before the next write.
		_ = w.f.Truncate(w.size)
		return err
	}
	w.size += int64(len(buf))
	w.limit = w.size
	return nil
}

// recover makes the active file writable again after a failure (or opens it
// the first time): it reopens it, truncates what failed writes left past
// the durable end, and fsyncs the file and the directory. A fsync error can
// drop dirty pages without saying which, so the file is always reopened
// rather than trusted.
func (l *Log) recover() error {
	w := &l.w
	if !w.dirty {
		return nil
	}
	if w.f != nil {
		w.f.Close()
		w.f = nil
	}
	f, err := l.opts.openFile(w.path, os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		return err
	}
	fi, err := f.Stat()
	if err == nil {
		switch {
		case fi.Size() < w.size:
			err = fmt.Errorf("%w: %s shrank to %d bytes, %d were durable", ErrCorrupt, w.path, fi.Size(), w.size)
		case fi.Size() > w.limit:
			err = fmt.Errorf("%w: %s has %d unexpected bytes past the end of the chain", ErrCorrupt, w.path, fi.Size()-w.size)
		case fi.Size() > w.size:
			err = f.Truncate(w.size)
		}
	}
	if err == nil {
		err = f.Sync()
	}
	if err == nil {
		err = syncDir(l.opts.Dir)
	}
	if err != nil {
		f.Close()
		return err
	}
	w.f, w.dirty, w.limit, w.reserved = f, false, w.size, 0
	return nil
}

// rotate closes the active file (which must end in a durable checkpoint)
// and starts a new one named after the next seq.
func (l *Log) rotate(now time.Time) error {
	w := &l.w
	if w.f != nil {
		w.release()
		if err := w.f.Close(); err != nil {
			// Everything in it was fsynced; the close error changes nothing.
			l.log.Warn("close rotated audit file", "file", w.path, "err", err)
		}
		w.f = nil
	}
	w.path = filepath.Join(l.opts.Dir, fileName(w.c.seq+1))
	w.size, w.limit, w.created, w.dirty, w.reserved = 0, 0, now, true, 0
	f, err := l.opts.openFile(w.path, os.O_RDWR|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return err
	}
	w.f = f
	if err := syncDir(l.opts.Dir); err != nil {
		return err
	}
	w.dirty = false
	l.log.Info("audit log rotated", "file", w.path)
	l.prune(now)
	return nil
}

// shutdown writes the final checkpoint and releases the file and the lock.
func (l *Log) shutdown() error {
	w := &l.w
	var err error
	if w.c.lastType != TypeCheckpoint {
		err = l.recover()
		if err == nil {
			work := w.c
			err = l.flush(work.appendCheckpoint(w.buf[:0], l.now(), l.opts.SigningKey, l.keyID))
			if err == nil {
				w.c = work
				l.succeed(nil)
			}
		}
		if err != nil {
			err = unavailable(fmt.Errorf("final checkpoint: %w", err))
			l.setHealth(err)
		}
	}
	if w.f != nil {
		if err == nil {
			w.release()
		}
		if cerr := w.f.Close(); cerr != nil {
			// Everything that counts was fsynced (or err says it was not).
			l.log.Warn("close audit file", "file", w.path, "err", cerr)
		}
		w.f = nil
	}
	if uerr := l.unlock(); uerr != nil {
		l.log.Warn("unlock audit directory", "err", uerr)
	}
	l.log.Info("audit log closed", "last_seq", l.LastSeq())
	return err
}

// load finds the chain head on disk and the active file. The file is opened
// by the first recover. It returns the reason to put in the start record.
func (l *Log) load() (reason string, err error) {
	w := &l.w
	now := l.now()
	files, err := listFiles(l.opts.Dir)
	if err != nil {
		return "", fmt.Errorf("list audit files: %w", err)
	}
	w.dirty = true
	if len(files) == 0 {
		w.path, w.created = filepath.Join(l.opts.Dir, fileName(1)), now
		return "", nil
	}
	newest := files[len(files)-1]
	last, end, reason, err := l.loadTail(newest.path, l.opts.RepairTornTail)
	if err != nil {
		return "", err
	}
	w.path, w.size, w.limit, w.created = newest.path, end, end, now
	if last == nil {
		// No complete record: a crash right after a rotation created the file.
		if len(files) > 1 {
			prev := files[len(files)-2]
			if last, _, _, err = l.loadTail(prev.path, false); err != nil {
				return "", err
			}
			if last == nil {
				return "", fmt.Errorf("%w: %s and %s hold no complete record", ErrCorrupt, prev.path, newest.path)
			}
		}
		var lastSeq uint64
		if last != nil {
			lastSeq = last.Seq
		}
		if newest.first != lastSeq+1 {
			return "", fmt.Errorf("%w: empty file %s should start at seq %d", ErrCorrupt, newest.path, lastSeq+1)
		}
	} else {
		if last.Seq < newest.first {
			return "", fmt.Errorf("%w: %s ends at seq %d, before its first seq %d", ErrCorrupt, newest.path, last.Seq, newest.first)
		}
		if head, err := readFirst(newest.path); err == nil {
			w.created = head.Time
		}
	}
	if last != nil {
		w.c = chain{seq: last.Seq, hash: last.Hash, lastType: last.Type}
		if last.Type != TypeCheckpoint {
			w.c.sinceCheckpoint = 1
		}
	}
	l.lastSeq.Store(w.c.seq)
	return reason, nil
}

// loadTail checks the last complete record of path, repairing a torn
// fragment after it if repair is set. It returns that record (nil if there
// is none) and the offset where the next record goes.
func (l *Log) loadTail(path string, repair bool) (last *Record, end int64, reason string, err error) {
	f, err := os.OpenFile(path, os.O_RDWR, 0)
	if err != nil {
		return nil, 0, "", err
	}
	defer f.Close()
	t, err := readTail(f)
	if err != nil {
		return nil, 0, "", err
	}
	if t.end < t.size {
		n := t.size - t.end
		if !repair {
			return nil, 0, "", fmt.Errorf("%w: %s ends with %d bytes of an incomplete line at offset %d (an append interrupted by a crash, or a truncation); set RepairTornTail to move them aside", ErrTornTail, path, n, t.end)
		}
		side := path + ".torn-" + strconv.FormatInt(t.end, 10)
		if err := saveFragment(f, t.end, n, side); err != nil {
			return nil, 0, "", fmt.Errorf("save torn tail of %s: %w", path, err)
		}
		if err := f.Truncate(t.end); err != nil {
			return nil, 0, "", err
		}
		if err := f.Sync(); err != nil {
			return nil, 0, "", err
		}
		reason = fmt.Sprintf("repaired torn tail: %d bytes at offset %d of %s moved to %s", n, t.end, filepath.Base(path), filepath.Base(side))
		l.log.Warn("audit log had a torn tail", "file", path, "offset", t.end, "bytes", n, "moved_to", side)
	}
	if t.last == nil {
		return nil, t.end, reason, nil
	}
	rec, msg := decodeLine(t.last)
	if msg != "" {
		return nil, 0, "", fmt.Errorf("%w: %s: last record (offset %d): %s", ErrCorrupt, path, t.lastStart, msg)
	}
	return rec, t.end, reason, nil
}

// saveFragment copies n bytes of f at off to a new file, durably.
func saveFragment(f *os.File, off, n int64, path string) error {
	frag := make([]byte, n)
	if _, err := f.ReadAt(frag, off); err != nil {
		return err
	}
	side, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return err
	}
	_, err = side.Write(frag)
	if err == nil {
		err = side.Sync()
	}
	if cerr := side.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = syncDir(filepath.Dir(path))
	}
	return err
}

// prune deletes rotated files older than the retention, oldest first,
// stopping at the first file it keeps so that what remains is contiguous.
func (l *Log) prune(now time.Time) {
	if l.opts.Retention < 0 {
		return
	}
	files, err := listFiles(l.opts.Dir)
	if err != nil {
		l.log.Warn("audit retention: list files", "err", err)
		return
	}
	removed := 0
	for i := 0; i+1 < len(files) && files[i].path != l.w.path; i++ {
		next := files[i+1]
		var rotated time.Time
		if next.path == l.w.path && l.w.size == 0 {
			rotated = l.w.created
		} else {
			head, err := readFirst(next.path)
			if err != nil {
				l.log.Warn("audit retention: read file", "file", next.path, "err", err)
				break
			}
			rotated = head.Time
		}
		if now.Sub(rotated) < l.opts.Retention {
			break
		}
		if err := os.Remove(files[i].path); err != nil && !errors.Is(err, os.ErrNotExist) {
			l.log.Warn("audit retention: remove file", "file", files[i].path, "err", err)
			break
		}
		removed++
		l.log.Info("audit retention removed file", "file", files[i].path)
	}
	if removed > 0 {
		if err := syncDir(l.opts.Dir); err != nil {
			l.log.Warn("audit retention: sync directory", "err", err)
		}
	}
}
