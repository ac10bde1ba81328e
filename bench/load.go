//go:build linux

package main

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"math"
	"net/http"
	"slices"
	"strconv"
	"sync"
	"time"
)

// target is one load step: a request shape, its server and a concurrency.
type target struct {
	name   string
	conns  int
	server *proc                      // whose CPU time the step is charged
	method string                     // GET or PUT
	url    func(worker, i int) string // URL of request i of a worker
	token  string                     // X-Coffer-Token, if any
	body   []byte                     // request body, if any
}

// writeBody is the body of every PUT: a 100-byte text value.
var writeBody = []byte(`{"value":"` + secretValue + `"}`)

func trivialTarget(p *proc, conns int) target {
	u := p.url + "/v1/secrets/" + readSecret
	return target{name: "trivial GET", conns: conns, server: p, method: "GET",
		url: func(int, int) string { return u }}
}

func readTarget(p *proc, token string, conns int) target {
	u := p.url + "/v1/secrets/" + readSecret
	return target{name: "coffer read", conns: conns, server: p, method: "GET", token: token,
		url: func(int, int) string { return u }}
}

// readNoAuditTarget reads from a second server whose audit log is disabled,
// to measure what durable audit costs a read.
func readNoAuditTarget(p *proc, token string, conns int) target {
	t := readTarget(p, token, conns)
	t.name = "read, no audit"
	return t
}

// writeTarget writes a new secret per request: bench/w/c<conns>/<worker>/<i>,
// so no step or worker ever writes a name twice.
func writeTarget(p *proc, token string, conns int) target {
	prefix := p.url + "/v1/secrets/bench/w/c" + strconv.Itoa(conns) + "/"
	return target{name: "coffer write", conns: conns, server: p, method: "PUT", token: token, body: writeBody,
		url: func(w, i int) string { return prefix + strconv.Itoa(w) + "/" + strconv.Itoa(i) }}
}

// window is the measured part of a step; requests are recorded only if they
// start and finish inside it.
type window struct{ start, end time.Time }

// result is the outcome of one step.
type result struct {
	Target             string  `json:"target"`
	Conns              int     `json:"conns"`
	Requests           int     `json:"requests"` // successful, in the window
	Errors             int     `json:"errors"`   // failed or non-2xx, in the window
	FirstError         string  `json:"first_error,omitempty"`
	RPS                float64 `json:"requests_per_s"`
	P50Ms              float64 `json:"p50_ms"`
	P99Ms              float64 `json:"p99_ms"`
	MaxMs              float64 `json:"max_ms"`
	ServerCPUPerReqUs  float64 `json:"server_cpu_per_req_us"` // user + system
	ServerUserPerReqUs float64 `json:"server_user_per_req_us"`
	ServerSysPerReqUs  float64 `json:"server_sys_per_req_us"`
	LoadCPUPerReqUs    float64 `json:"load_cpu_per_req_us"` // the load generator's own CPU
	HostBusyPct        float64 `json:"host_busy_pct"`       // machine CPU busy, all processes
	OtherBusyPct       float64 `json:"other_busy_pct"`      // machine CPU used by neither server nor harness
	Sent               int     `json:"sent"`                // all requests sent, warm-up included
	// Audited Coffer steps: records per fsync of the audit log (group commit), warm-up included.
	AuditRecordsPerSync float64 `json:"audit_records_per_sync,omitempty"`
	// HA steps only: PostgreSQL commits and conflict retries over all nodes, warm-up included.
	Commits float64 `json:"commits,omitempty"`
	Retries float64 `json:"conflict_retries,omitempty"`
}

// runLoad runs a closed-loop load of t.conns workers for warmup+duration and
// measures the last duration of it.
func runLoad(ctx context.Context, t target, warmup, duration time.Duration) (result, error) {
	tr := &http.Transport{MaxIdleConns: t.conns, MaxIdleConnsPerHost: t.conns, DisableCompression: true}
	defer tr.CloseIdleConnections()
	client := &http.Client{Transport: tr, Timeout: callTimeout}

	start := time.Now().Add(warmup)
	w := window{start: start, end: start.Add(duration)}
	workers := make([]worker, t.conns)
	perWorker := latencyCapacity(duration, t.conns)
	var wg sync.WaitGroup
	for i := range workers {
		workers[i].lat = make([]time.Duration, 0, perWorker)
		wg.Go(func() { workers[i].loop(ctx, client, &t, i, w) })
	}
	cpu, err := measureCPU(ctx, w, t.server)
	wg.Wait()
	if ctx.Err() != nil {
		return result{}, ctx.Err()
	}
	if err != nil {
		return result{}, err
	}
	return summarize(t, workers, duration, cpu), nil
}

// latencyCapacity sizes each worker's latency slice for up to 100,000
// requests/s in all, so that recording never allocates during a normal run;
// the total is bounded at 4M entries (32 MiB).
func latencyCapacity(duration time.Duration, conns int) int {
	total := min(duration.Seconds()*100_000, 4<<20)
	return int(total)/conns + 1024
}

func sleepUntil(ctx context.Context, t time.Time) error {
	timer := time.NewTimer(time.Until(t))
	defer timer.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-timer.C:
		return nil
	}
}

// worker is one closed-loop client: one request in flight at a time.
type worker struct {
	lat      []time.Duration
	sent     int // requests sent, warm-up included
	errors   int
	firstErr string
}

// loop sends requests until w ends, recording those inside w.
func (wk *worker) loop(ctx context.Context, c *http.Client, t *target, id int, w window) {
	for i := 0; ; i++ {
		begin := time.Now()
		if !begin.Before(w.end) || ctx.Err() != nil {
			wk.sent = i
			return
		}
		err := send(ctx, c, t, t.url(id, i))
		end := time.Now()
		switch {
		case begin.Before(w.start) || end.After(w.end):
			// warm-up, or straddles the end: not measured
		case err != nil:
			wk.errors++
			if wk.firstErr == "" {
				wk.firstErr = err.Error()
			}
		default:
			wk.lat = append(wk.lat, end.Sub(begin))
		}
	}
}

// send performs one request and reads the whole answer, so that the
// connection is reused. A non-2xx status is an error carrying the body.
func send(ctx context.Context, c *http.Client, t *target, url string) error {
	var body io.Reader
	if t.body != nil {
		body = bytes.NewReader(t.body)
	}
	req, err := http.NewRequestWithContext(ctx, t.method, url, body)
	if err != nil {
		return err
	}
	if t.token != "" {
		req.Header.Set("X-Coffer-Token", t.token)
	}
	if t.body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := c.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode/100 != 2 {
		b, _ := io.ReadAll(io.LimitReader(resp.Body, 500))
		io.Copy(io.Discard, resp.Body)
		return fmt.Errorf("%s %s: %s: %s", t.method, url, resp.Status, bytes.TrimSpace(b))
	}
	_, err = io.Copy(io.Discard, resp.Body)
	return err
}

// summarize merges the workers' records into a result.
func summarize(t target, workers []worker, duration time.Duration, cpu usage) result {
	r := result{Target: t.name, Conns: t.conns}
	var lat []time.Duration
	for i := range workers {
		lat = append(lat, workers[i].lat...)
		r.Errors += workers[i].errors
		r.Sent += workers[i].sent
		if r.FirstError == "" {
			r.FirstError = workers[i].firstErr
		}
	}
	slices.Sort(lat)
	r.Requests = len(lat)
	r.RPS = float64(len(lat)) / duration.Seconds()
	r.P50Ms = ms(percentile(lat, 0.50))
	r.P99Ms = ms(percentile(lat, 0.99))
	r.MaxMs = ms(percentile(lat, 1))
	if n := float64(len(lat)); n > 0 {
		r.ServerCPUPerReqUs = us(cpu.serverUser+cpu.serverSys) / n
		r.ServerUserPerReqUs = us(cpu.serverUser) / n
		r.ServerSysPerReqUs = us(cpu.serverSys) / n
		r.LoadCPUPerReqUs = us(cpu.load) / n
	}
	r.HostBusyPct = 100 * cpu.hostBusy
	r.OtherBusyPct = 100 * cpu.otherBusy
	return r
}

// percentile returns the nearest-rank p-th quantile of sorted latencies.
func percentile(sorted []time.Duration, p float64) time.Duration {
	if len(sorted) == 0 {
		return 0
	}
	i := int(math.Ceil(p*float64(len(sorted)))) - 1
	return sorted[max(0, min(i, len(sorted)-1))]
}

func ms(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }
func us(d time.Duration) float64 { return float64(d) / float64(time.Microsecond) }
