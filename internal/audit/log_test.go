package audit

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"
)

func TestAppendReopenContinuesChain(t *testing.T) {
	opts := testOptions(t)
	l := openLog(t, opts)
	first := appendN(t, l, 0, 10)
	if first[0].Seq != 2 || first[0].Prev == "" || first[9].Seq != 11 {
		t.Fatalf("seqs = %d..%d, want 2..11 after the start record", first[0].Seq, first[9].Seq)
	}
	closeLog(t, l)
	// 1 start + 10 + closing checkpoint.
	if got := l.LastSeq(); got != 12 {
		t.Fatalf("LastSeq after Close = %d, want 12", got)
	}

	l = openLog(t, opts)
	second := appendN(t, l, 10, 5)
	closeLog(t, l)
	if second[0].Seq != 14 {
		t.Fatalf("first seq after reopen = %d, want 14 (after a start record)", second[0].Seq)
	}

	recs := readAll(t, opts.Dir)
	wantTypes := []string{TypeStart}
	for range 10 {
		wantTypes = append(wantTypes, TypeRequest)
	}
	wantTypes = append(wantTypes, TypeCheckpoint, TypeStart)
	for range 5 {
		wantTypes = append(wantTypes, TypeRequest)
	}
	wantTypes = append(wantTypes, TypeCheckpoint)
	if len(recs) != len(wantTypes) {
		t.Fatalf("read %d records, want %d", len(recs), len(wantTypes))
	}
	for i, rec := range recs {
		if rec.Seq != uint64(i+1) || rec.Type != wantTypes[i] {
			t.Errorf("record %d: seq %d type %q, want seq %d type %q", i, rec.Seq, rec.Type, i+1, wantTypes[i])
		}
	}
	if got := recs[13]; got.Hash != second[0].Hash || got.Path != second[0].Path {
		t.Errorf("read back %+v, want what Append returned %+v", got, second[0])
	}
	rep := mustVerify(t, opts.Dir, VerifyOptions{Keys: keys(opts.SigningKey), RequireSignedTail: true, ExpectLastSeq: 19})
	if rep.Records != 19 || rep.FirstSeq != 1 || rep.LastSeq != 19 || rep.Checkpoints != 2 || rep.Unsigned != 0 {
		t.Errorf("report = %+v", rep)
	}
}

func TestRotationBySize(t *testing.T) {
	opts := testOptions(t)
	opts.MaxFileBytes = 3000
	opts.CheckpointEvery = 1000
	l := openLog(t, opts)
	appendN(t, l, 0, 60)
	closeLog(t, l)
	l = openLog(t, opts)
	appendN(t, l, 60, 20)
	closeLog(t, l)

	names := fileNames(t, opts.Dir)
	if len(names) < 4 {
		t.Fatalf("files = %v, want several", names)
	}
	for i, name := range names {
		path := filepath.Join(opts.Dir, name)
		// One record never exceeds ~600 bytes; a checkpoint may go past the limit.
		if size := fileSize(t, path); size > opts.MaxFileBytes+600 {
			t.Errorf("%s is %d bytes, limit %d", name, size, opts.MaxFileBytes)
		}
		if i < len(names)-1 {
			if recs := readFile(t, path); recs[len(recs)-1].Type != TypeCheckpoint {
				t.Errorf("rotated file %s ends with a %s record, want a checkpoint", name, recs[len(recs)-1].Type)
			}
		}
	}
	rep := mustVerify(t, opts.Dir, VerifyOptions{Keys: keys(opts.SigningKey), RequireSignedTail: true})
	if rep.Checkpoints < len(names) {
		t.Errorf("%d checkpoints for %d files", rep.Checkpoints, len(names))
	}
}

// readFile returns the records of one file.
func readFile(tb testing.TB, path string) []*Record {
	tb.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		tb.Fatal(err)
	}
	var recs []*Record
	for line := range strings.Lines(string(data)) {
		rec, msg := decodeLine([]byte(strings.TrimSuffix(line, "\n")))
		if msg != "" {
			tb.Fatalf("%s: %s", path, msg)
		}
		recs = append(recs, rec)
	}
	return recs
}

func TestRotationByAge(t *testing.T) {
	clock := newTestClock()
	opts := testOptions(t)
	opts.Now = clock.Now
	opts.MaxFileAge = time.Hour
	l := openLog(t, opts)
	appendN(t, l, 0, 2)
	clock.Advance(59 * time.Minute)
	appendN(t, l, 2, 2)
	if names := fileNames(t, opts.Dir); len(names) != 1 {
		t.Fatalf("files after 59m = %v, want 1", names)
	}
	clock.Advance(2 * time.Minute)
	recs := appendN(t, l, 4, 1)
	names := fileNames(t, opts.Dir)
	// The old file got a checkpoint (seq 6), so the new one starts at seq 7.
	if want := []string{fileName(1), fileName(7)}; fmt.Sprint(names) != fmt.Sprint(want) {
		t.Fatalf("files after 61m = %v, want %v", names, want)
	}
	if recs[0].Seq != 7 {
		t.Errorf("first record of the new file has seq %d, want 7", recs[0].Seq)
	}
	closeLog(t, l)

	// Reopening takes the age from the first record of the active file.
	clock.Advance(30 * time.Minute)
	l = openLog(t, opts)
	clock.Advance(31 * time.Minute)
	appendN(t, l, 5, 1)
	closeLog(t, l)
	if names := fileNames(t, opts.Dir); len(names) != 3 {
		t.Errorf("files after reopen = %v, want 3", names)
	}
	mustVerify(t, opts.Dir, VerifyOptions{Keys: keys(opts.SigningKey), RequireSignedTail: true})
}

func TestRetention(t *testing.T) {
	clock := newTestClock()
	opts := testOptions(t)
	opts.Now = clock.Now
	opts.MaxFileAge = time.Hour
	opts.Retention = 3 * time.Hour
	l := openLog(t, opts)
	var firsts []uint64
	for i := range 4 { // a file rotated out at +2h, +4h and +6h
		rec := appendN(t, l, i, 1)[0]
		firsts = append(firsts, rec.Seq)
		clock.Advance(2 * time.Hour)
	}
	// Now +8h: the file rotated out at +2h (first seq 1) is 6h old, and the
	// one rotated out at +4h is 4h old; +6h is 2h old.
	appendN(t, l, 4, 1)
	names := fileNames(t, opts.Dir)
	if want := []string{fileName(firsts[2]), fileName(firsts[3]), fileName(firsts[3] + 2)}; fmt.Sprint(names) != fmt.Sprint(want) {
		t.Fatalf("files = %v, want %v", names, want)
	}
	closeLog(t, l)
	rep := mustVerify(t, opts.Dir, VerifyOptions{Keys: keys(opts.SigningKey), RequireSignedTail: true})
	if rep.FirstSeq != firsts[2] {
		t.Errorf("FirstSeq = %d, want %d", rep.FirstSeq, firsts[2])
	}
	if _, err := NewReader(opts.Dir, 1); !errors.Is(err, ErrPruned) {
		t.Errorf("NewReader(after 1) = %v, want ErrPruned", err)
	}
	if recs := readAll(t, opts.Dir); recs[0].Seq != firsts[2] {
		t.Errorf("reader from 0 starts at seq %d, want the oldest kept %d", recs[0].Seq, firsts[2])
	}

	// Negative retention keeps everything.
	opts.Retention = -1
	clock.Advance(1000 * time.Hour)
	l = openLog(t, opts)
	appendN(t, l, 5, 1)
	closeLog(t, l)
	if got := fileNames(t, opts.Dir); len(got) != 4 {
		t.Errorf("files with Retention -1 = %v, want 4", got)
	}
}

func TestGroupCommit(t *testing.T) {
	const n = 64
	opts := testOptions(t)
	arm, entered, release := blockNextSync(&opts)
	l := openLog(t, opts)
	base := l.syncs.Load()
	arm()

	seqs := make([]uint64, n)
	var wg sync.WaitGroup
	appendOne := func(i int) {
		defer wg.Done()
		rec := request(i)
		if err := l.Append(context.Background(), rec); err != nil {
			t.Errorf("Append(%d): %v", i, err)
		}
		seqs[i] = rec.Seq
	}
	wg.Add(1)
	go appendOne(0)
	<-entered // the writer holds record 0 in its fsync
	wg.Add(n - 1)
	for i := 1; i < n; i++ {
		go appendOne(i)
	}
	for l.queued() < n-1 {
		runtime.Gosched()
	}
	close(release)
	wg.Wait()

	if got := l.syncs.Load() - base; got != 2 {
		t.Errorf("%d appends took %d fsyncs, want 2 (one for the first, one for the %d queued behind it)", n, got, n-1)
	}
	seen := map[uint64]bool{}
	for i, s := range seqs {
		if s < 2 || s > n+1 || seen[s] {
			t.Errorf("Append(%d) got seq %d: not a unique seq in 2..%d", i, s, n+1)
		}
		seen[s] = true
	}
	closeLog(t, l)
	recs := readAll(t, opts.Dir)
	for _, rec := range recs[1 : n+1] {
		var i int
		fmt.Sscanf(rec.RequestID, "req-%d", &i)
		if seqs[i] != rec.Seq {
			t.Errorf("%s is at seq %d on disk, Append returned %d", rec.RequestID, rec.Seq, seqs[i])
		}
	}
	mustVerify(t, opts.Dir, VerifyOptions{Keys: keys(opts.SigningKey), RequireSignedTail: true})
}

// queued returns the number of Appends waiting for the writer.
func (l *Log) queued() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return len(l.queue)
}

func TestConcurrentAppends(t *testing.T) {
	const workers, each = 8, 100
	opts := testOptions(t)
	opts.MaxFileBytes = 20_000
	opts.CheckpointEvery = 50
	l := openLog(t, opts)
	base := l.syncs.Load()
	var wg sync.WaitGroup
	for w := range workers {
		wg.Go(func() {
			var last uint64
			for i := range each {
				rec := request(w*each + i)
				if err := l.Append(context.Background(), rec); err != nil {
					t.Errorf("Append: %v", err)
					return
				}
				// Each Append returns after its record is durable, so the
				// next one from the same goroutine must come later.
				if rec.Seq <= last {
					t.Errorf("worker %d: seq %d after %d", w, rec.Seq, last)
				}
				last = rec.Seq
			}
		})
	}
	wg.Wait()
	t.Logf("%d records in %d fsyncs", workers*each, l.syncs.Load()-base)
	closeLog(t, l)
	var requests int
	for _, rec := range readAll(t, opts.Dir) {
		if rec.Type == TypeRequest {
			requests++
		}
	}
	if requests != workers*each {
		t.Errorf("%d request records on disk, want %d", requests, workers*each)
	}
	mustVerify(t, opts.Dir, VerifyOptions{Keys: keys(opts.SigningKey), RequireSignedTail: true})
}

func TestAppendRejects(t *testing.T) {
	l := openLog(t, testOptions(t))
	cancelled, cancel := context.WithCancel(context.Background())
	cancel()
	tests := []struct {
		name string
		ctx  context.Context
		rec  *Record
		want error
	}{
		{"nil record", context.Background(), nil, ErrInvalidRecord},
		{"start type", context.Background(), &Record{Type: TypeStart}, ErrInvalidRecord},
		{"checkpoint type", context.Background(), &Record{Type: TypeCheckpoint}, ErrInvalidRecord},
		{"checkpoint field", context.Background(), &Record{Checkpoint: &Checkpoint{}}, ErrInvalidRecord},
		{"too large", context.Background(), &Record{Reason: strings.Repeat("x", MaxRecordBytes)}, ErrInvalidRecord},
		{"unencodable time", context.Background(), &Record{Time: time.Date(10000, 1, 1, 0, 0, 0, 0, time.UTC)}, ErrInvalidRecord},
		{"cancelled context", cancelled, &Record{}, context.Canceled},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if err := l.Append(tt.ctx, tt.rec); !errors.Is(err, tt.want) {
				t.Errorf("Append = %v, want %v", err, tt.want)
			}
		})
	}
	if got := l.LastSeq(); got != 1 {
		t.Errorf("LastSeq = %d, want 1 (only the start record)", got)
	}
	closeLog(t, l)
	if err := l.Append(context.Background(), &Record{}); !errors.Is(err, ErrClosed) {
		t.Errorf("Append after Close = %v, want ErrClosed", err)
	}
	if err := l.Close(); err != nil {
		t.Errorf("second Close = %v, want nil", err)
	}
}

func TestAppendDefaults(t *testing.T) {
	clock := newTestClock()
	opts := testOptions(t)
	opts.Now = clock.Now
	l := openLog(t, opts)
	rec := &Record{Seq: 99, Prev: "bogus", Hash: "bogus", Op: "sys.health"}
	if err := l.Append(context.Background(), rec); err != nil {
		t.Fatal(err)
	}
	if rec.Seq != 2 || rec.Type != TypeRequest || !rec.Time.Equal(clock.Now()) || rec.Time.Location() != time.UTC || len(rec.Hash) != 64 || len(rec.Prev) != 64 {
		t.Errorf("Append set %+v", rec)
	}
	local := time.Date(2024, 5, 6, 7, 8, 9, 0, time.FixedZone("X", 3600))
	rec = &Record{Time: local, Type: "login"}
	if err := l.Append(context.Background(), rec); err != nil {
		t.Fatal(err)
	}
	if !rec.Time.Equal(local) || rec.Time.Location() != time.UTC || rec.Type != "login" {
		t.Errorf("Append kept time %v type %q, want %v in UTC and type login", rec.Time, rec.Type, local)
	}
}

func TestOpenOptions(t *testing.T) {
	dir := t.TempDir()
	tests := []struct {
		name string
		opts Options
		want error
	}{
		{"no dir", Options{SigningKey: testKey(1)}, ErrInvalidOptions},
		{"no key", Options{Dir: dir}, ErrInvalidOptions},
		{"short key", Options{Dir: dir, SigningKey: testKey(1)[:32]}, ErrInvalidOptions},
		{"negative size", Options{Dir: dir, SigningKey: testKey(1), MaxFileBytes: -1}, ErrInvalidOptions},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if _, err := Open(tt.opts); !errors.Is(err, tt.want) {
				t.Errorf("Open = %v, want %v", err, tt.want)
			}
		})
	}
}

func TestOpenCreatesPrivateFiles(t *testing.T) {
	opts := testOptions(t)
	l := openLog(t, opts)
	closeLog(t, l)
	fi, err := os.Stat(opts.Dir)
	if err != nil {
		t.Fatal(err)
	}
	if got := fi.Mode().Perm(); got != 0o700 {
		t.Errorf("directory mode %v, want 0700", got)
	}
	if got := fileModePerm(t, filepath.Join(opts.Dir, fileName(1))); got != 0o600 {
		t.Errorf("file mode %v, want 0600", got)
	}
}

func fileModePerm(tb testing.TB, path string) os.FileMode {
	tb.Helper()
	fi, err := os.Stat(path)
	if err != nil {
		tb.Fatal(err)
	}
	return fi.Mode().Perm()
}

func TestOpenLocked(t *testing.T) {
	opts := testOptions(t)
	l := openLog(t, opts)
	if _, err := Open(opts); !errors.Is(err, ErrLocked) {
		t.Fatalf("second Open = %v, want ErrLocked", err)
	}
	closeLog(t, l)
	l = openLog(t, opts) // released by Close
	closeLog(t, l)
}

func TestOpenTornTail(t *testing.T) {
	opts := testOptions(t)
	l := openLog(t, opts)
	appendN(t, l, 0, 3)
	closeLog(t, l)
	path := filepath.Join(opts.Dir, fileName(1))
	good := fileSize(t, path)
	fragment := []byte(`{"seq":6,"time":"2025-01-02T03:04:05.6Z","ty`)
	appendBytes(t, path, fragment)

	if _, err := Open(opts); !errors.Is(err, ErrTornTail) {
		t.Fatalf("Open with a torn tail = %v, want ErrTornTail", err)
	}
	if got := fileSize(t, path); got != good+int64(len(fragment)) {
		t.Fatalf("refused Open changed the file: %d bytes", got)
	}

	opts.RepairTornTail = true
	l = openLog(t, opts)
	rec := appendN(t, l, 3, 1)[0]
	closeLog(t, l)
	if rec.Seq != 7 {
		t.Errorf("seq after repair = %d, want 7 (6 is the start record)", rec.Seq)
	}
	side := fmt.Sprintf("%s.torn-%d", path, good)
	if got, err := os.ReadFile(side); err != nil || string(got) != string(fragment) {
		t.Errorf("side file %s = %q, %v; want the fragment", side, got, err)
	}
	recs := readAll(t, opts.Dir)
	if start := recs[5]; start.Type != TypeStart || !strings.Contains(start.Reason, "repaired torn tail") {
		t.Errorf("record 6 = %s %q, want a start record naming the repair", start.Type, start.Reason)
	}
	mustVerify(t, opts.Dir, VerifyOptions{Keys: keys(opts.SigningKey), RequireSignedTail: true})
}

func appendBytes(tb testing.TB, path string, b []byte) {
	tb.Helper()
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_APPEND, 0)
	if err != nil {
		tb.Fatal(err)
	}
	defer f.Close()
	if _, err := f.Write(b); err != nil {
		tb.Fatal(err)
	}
}

func TestOpenRefusesCorruptTail(t *testing.T) {
	for _, repair := range []bool{false, true} {
		t.Run(fmt.Sprintf("repair=%v", repair), func(t *testing.T) {
			opts := testOptions(t)
			opts.RepairTornTail = repair
			l := openLog(t, opts)
			appendN(t, l, 0, 3)
			closeLog(t, l)
			path := filepath.Join(opts.Dir, fileName(1))
			data, err := os.ReadFile(path)
			if err != nil {
				t.Fatal(err)
			}
			// Change a digit of the last record's signature: still valid JSON.
			i := strings.LastIndex(string(data), `"sig":"`) + len(`"sig":"`)
			data[i] ^= 1
			if err := os.WriteFile(path, data, 0o600); err != nil {
				t.Fatal(err)
			}
			if _, err := Open(opts); !errors.Is(err, ErrCorrupt) {
				t.Fatalf("Open = %v, want ErrCorrupt", err)
			}
		})
	}
}

func TestOpenEmptyNewestFile(t *testing.T) {
	tests := []struct {
		name string
		file uint64 // first seq of the empty file; the log ends at 5
		want error
	}{
		{"next seq", 6, nil},
		{"wrong seq", 9, ErrCorrupt},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			opts := testOptions(t)
			l := openLog(t, opts)
			appendN(t, l, 0, 3)
			closeLog(t, l)
			// A crash right after a rotation created the file.
			if err := os.WriteFile(filepath.Join(opts.Dir, fileName(tt.file)), nil, 0o600); err != nil {
				t.Fatal(err)
			}
			l, err := Open(opts)
			if !errors.Is(err, tt.want) || (err == nil) != (tt.want == nil) {
				t.Fatalf("Open = %v, want %v", err, tt.want)
			}
			if err != nil {
				return
			}
			closeLog(t, l)
			if size := fileSize(t, filepath.Join(opts.Dir, fileName(tt.file))); size == 0 {
				t.Errorf("the empty file was not continued")
			}
			mustVerify(t, opts.Dir, VerifyOptions{Keys: keys(opts.SigningKey), RequireSignedTail: true})
		})
	}
}

func TestPublicKeyID(t *testing.T) {
	a, b := PublicKeyID(pubOf(testKey(1))), PublicKeyID(pubOf(testKey(2)))
	if len(a) != 16 || a == b {
		t.Errorf("PublicKeyID = %q and %q, want distinct 16-digit ids", a, b)
	}
}

// TestLingerEndsWithFewerAppends: after a large batch the writer lingers for
// as many appends as that batch held; when fewer come, they are still
// written, together, once the linger ends.
func TestLingerEndsWithFewerAppends(t *testing.T) {
	const n = 16
	opts := testOptions(t)
	arm, entered, release := blockNextSync(&opts)
	l := openLog(t, opts)
	arm()
	var wg sync.WaitGroup
	appendOne := func(i int) {
		defer wg.Done()
		if err := l.Append(context.Background(), request(i)); err != nil {
			t.Errorf("Append(%d): %v", i, err)
		}
	}
	wg.Add(1)
	go appendOne(0)
	<-entered
	wg.Add(n - 1)
	for i := 1; i < n; i++ {
		go appendOne(i)
	}
	for l.queued() < n-1 {
		runtime.Gosched()
	}
	close(release)
	wg.Wait() // the writer now expects n-1 appends per batch

	base := l.syncs.Load()
	wg.Add(3)
	for i := n; i < n+3; i++ {
		go appendOne(i)
	}
	wg.Wait()
	if got := l.syncs.Load() - base; got < 1 || got > 3 {
		t.Errorf("3 appends took %d fsyncs", got)
	}
	closeLog(t, l)
	if recs := readAll(t, opts.Dir); len(recs) != n+3+2 { // start, n+3 requests, closing checkpoint
		t.Errorf("%d records on disk, want %d", len(recs), n+5)
	}
}
