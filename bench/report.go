//go:build linux

package main

import (
	"encoding/json"
	"fmt"
	"io"
	"os"
	"runtime"
	"slices"
	"text/tabwriter"
	"time"
)

// The budget of DESIGN.md, "Performance budget".
const (
	budgetConns      = 32       // connections at which the budget is checked
	maxReadCPURatio  = 3.0      // coffer read CPU/req ÷ trivial CPU/req
	minReadRPSRatio  = 0.5      // coffer read throughput ÷ trivial throughput
	maxReadP99Ratio  = 2.0      // coffer read p99 ÷ trivial p99
	minWritesPerSec  = 7000.0   // durable new-key writes/s
	maxRSSBytes      = 64 << 20 // coffer RSS after the write steps
	maxRestartMillis = 100.0    // restart to serving, key-file unseal
)

// report is everything the harness prints, and its JSON form.
type report struct {
	Date           time.Time `json:"date"`
	GoVersion      string    `json:"go_version"`
	NumCPU         int       `json:"num_cpu"`
	GOMAXPROCS     int       `json:"gomaxprocs"`
	ClockTicks     int64     `json:"clock_ticks_per_s"`
	Duration       string    `json:"duration"`
	Warmup         string    `json:"warmup"`
	Results        []result  `json:"results"`
	Ratios         []ratio   `json:"read_ratios"`
	SecretsWritten int       `json:"secrets_written"` // by the write steps, warm-up included
	Coffer         memory    `json:"coffer_memory"`   // after the write steps
	Trivial        memory    `json:"trivial_memory"`
	DBBytes        int64     `json:"db_bytes"` // bolt file after the write steps
	Restart        restart   `json:"restart"`
	BudgetConns    int       `json:"budget_conns"`
	Budget         []check   `json:"budget"`
}

// ratio compares coffer read with trivial GET at one concurrency.
type ratio struct {
	Conns      int     `json:"conns"`
	CPUPerReq  float64 `json:"cpu_per_req"` // coffer ÷ trivial; lower is better
	Throughput float64 `json:"throughput"`  // coffer ÷ trivial; higher is better
	P99        float64 `json:"p99"`         // coffer ÷ trivial; lower is better
}

// restart is the stop/start measurement.
type restart struct {
	StopMs    float64 `json:"stop_ms"`    // SIGTERM to exit
	StopError string  `json:"stop_error"` // exit status, if not clean
	ServingMs float64 `json:"serving_ms"` // process start to health 200
}

// check is one budget line.
type check struct {
	Name   string  `json:"name"`
	Value  float64 `json:"value"`
	Limit  string  `json:"limit"`
	Pass   bool    `json:"pass"`
	format string  // Printf verb and unit for Value
}

func newReport(o options) *report {
	return &report{
		Date: time.Now().UTC(), GoVersion: runtime.Version(), NumCPU: runtime.NumCPU(),
		GOMAXPROCS: runtime.GOMAXPROCS(0), ClockTicks: clockTicks(),
		Duration: o.duration.String(), Warmup: o.warmup.String(),
	}
}

func (r *report) add(res result) { r.Results = append(r.Results, res) }

// find returns the result of target at conns, or nil.
func (r *report) find(target string, conns int) *result {
	for i := range r.Results {
		if r.Results[i].Target == target && r.Results[i].Conns == conns {
			return &r.Results[i]
		}
	}
	return nil
}

// finish computes the ratios and the budget checks.
func (r *report) finish() {
	var conns []int
	for _, res := range r.Results {
		if res.Target == "coffer write" {
			r.SecretsWritten += res.Sent
		}
		if res.Target == "coffer read" {
			conns = append(conns, res.Conns)
		}
	}
	for _, c := range conns {
		t, cr := r.find("trivial GET", c), r.find("coffer read", c)
		r.Ratios = append(r.Ratios, ratio{Conns: c,
			CPUPerReq:  div(cr.ServerCPUPerReqUs, t.ServerCPUPerReqUs),
			Throughput: div(cr.RPS, t.RPS),
			P99:        div(cr.P99Ms, t.P99Ms)})
	}
	r.BudgetConns = budgetConns
	if !slices.Contains(conns, budgetConns) && len(conns) > 0 {
		r.BudgetConns = slices.Max(conns) // -conns without 32: check at the highest level
	}
	r.checks()
}

// checks fills r.Budget at r.BudgetConns.
func (r *report) checks() {
	add := func(name string, v float64, format, limit string, pass bool) {
		r.Budget = append(r.Budget, check{name, v, limit, pass, format})
	}
	for _, q := range r.Ratios {
		if q.Conns == r.BudgetConns {
			add("read CPU/req ÷ trivial", q.CPUPerReq, "%.2fx", fmt.Sprintf("<= %.1fx", maxReadCPURatio), q.CPUPerReq <= maxReadCPURatio)
			add("read throughput ÷ trivial", q.Throughput, "%.2fx", fmt.Sprintf(">= %.1fx", minReadRPSRatio), q.Throughput >= minReadRPSRatio)
			add("read p99 ÷ trivial", q.P99, "%.2fx", fmt.Sprintf("<= %.1fx", maxReadP99Ratio), q.P99 <= maxReadP99Ratio)
		}
	}
	if w := r.find("coffer write", r.BudgetConns); w != nil {
		add("durable writes (new keys)", w.RPS, "%.0f/s", fmt.Sprintf(">= %.0f/s", minWritesPerSec), w.RPS >= minWritesPerSec)
	}
	add("coffer RSS after writes", mib(r.Coffer.RSS), "%.1f MiB", fmt.Sprintf("< %d MiB", maxRSSBytes>>20), r.Coffer.RSS < maxRSSBytes)
	add("restart to serving", r.Restart.ServingMs, "%.1f ms", fmt.Sprintf("< %.0f ms", maxRestartMillis), r.Restart.ServingMs < maxRestartMillis)
	errs := 0
	for _, res := range r.Results {
		errs += res.Errors
	}
	add("errors in all steps", float64(errs), "%.0f", "0", errs == 0)
}

// print writes the human-readable report.
func (r *report) print(out io.Writer) {
	fmt.Fprintf(out, "\nCoffer vs a trivial net/http handler: %s, %d CPUs, GOMAXPROCS %d, %s per step after %s warm-up,\n",
		r.GoVersion, r.NumCPU, r.GOMAXPROCS, r.Duration, r.Warmup)
	fmt.Fprintf(out, "closed-loop load from this process on the same machine (127.0.0.1, keep-alive). CPU from /proc at %d ticks/s.\n\n", r.ClockTicks)
	r.printResults(out)
	r.printErrors(out)
	r.printInterference(out)
	r.printRatios(out)
	fmt.Fprintf(out, "\nMemory and restart:\n")
	fmt.Fprintf(out, "  coffer RSS after the write steps: %.1f MiB = %.1f anonymous + %.1f file-backed (binary, bolt mmap); bolt file %.1f MiB\n",
		mib(r.Coffer.RSS), mib(r.Coffer.Anon), mib(r.Coffer.File), mib(r.DBBytes))
	fmt.Fprintf(out, "  trivial handler RSS: %.1f MiB\n", mib(r.Trivial.RSS))
	fmt.Fprintf(out, "  stop (SIGTERM to exit): %.1f ms", r.Restart.StopMs)
	if r.Restart.StopError != "" {
		fmt.Fprintf(out, " (not clean: %s)", r.Restart.StopError)
	}
	fmt.Fprintf(out, "\n  restart to serving (exec to /v1/sys/health 200, key-file unseal, ~%d secrets written): %.1f ms\n",
		r.SecretsWritten+1, r.Restart.ServingMs)
	r.printBudget(out)
}

func (r *report) printResults(out io.Writer) {
	tw := tabwriter.NewWriter(out, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "target\tconns\treq/s\tp50 ms\tp99 ms\tmax ms\tserver CPU/req us\tload-gen CPU/req us\thost busy\terrors\t")
	for _, x := range r.Results {
		fmt.Fprintf(tw, "%s\t%d\t%.0f\t%.3f\t%.3f\t%.3f\t%.1f\t%.1f\t%.0f%%\t%d\t\n",
			x.Target, x.Conns, x.RPS, x.P50Ms, x.P99Ms, x.MaxMs, x.ServerCPUPerReqUs, x.LoadCPUPerReqUs, x.HostBusyPct, x.Errors)
	}
	tw.Flush()
}

// printErrors prints the first error of each target once.
func (r *report) printErrors(out io.Writer) {
	seen := map[string]bool{}
	for _, x := range r.Results {
		if x.FirstError != "" && !seen[x.Target] {
			seen[x.Target] = true
			fmt.Fprintf(out, "first error, %s (%d conns): %s\n", x.Target, x.Conns, x.FirstError)
		}
	}
}

// maxOtherBusyPct is the share of the machine's CPU that other activity may
// use during a step before the report warns that the figures are disturbed.
const maxOtherBusyPct = 15

// printInterference warns about steps during which something besides the
// server and the load generator used much CPU: another job on the machine.
func (r *report) printInterference(out io.Writer) {
	for _, x := range r.Results {
		if x.OtherBusyPct > maxOtherBusyPct {
			fmt.Fprintf(out, "warning: %s (%d conns): %.0f%% of the machine's CPU went to other processes or the kernel; its figures may be disturbed\n",
				x.Target, x.Conns, x.OtherBusyPct)
		}
	}
}

func (r *report) printRatios(out io.Writer) {
	fmt.Fprintf(out, "\nCoffer read with durable audit ÷ without (issue 4 asks for >= 0.8):\n")
	for _, q := range r.Ratios {
		on, off := r.find("coffer read", q.Conns), r.find("read, no audit", q.Conns)
		if on != nil && off != nil {
			fmt.Fprintf(out, "  %2d conns: %.0f/s vs %.0f/s = %.2fx throughput, CPU/req %.1f vs %.1f us, %.1f records per audit fsync\n", q.Conns,
				on.RPS, off.RPS, div(on.RPS, off.RPS), on.ServerCPUPerReqUs, off.ServerCPUPerReqUs, on.AuditRecordsPerSync)
		}
	}
	fmt.Fprintf(out, "\nCoffer read ÷ trivial GET, same run:\n")
	tw := tabwriter.NewWriter(out, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "conns\tCPU/req\tthroughput\tp99\t")
	for _, q := range r.Ratios {
		fmt.Fprintf(tw, "%d\t%.2fx\t%.2fx\t%.2fx\t\n", q.Conns, q.CPUPerReq, q.Throughput, q.P99)
	}
	tw.Flush()
}

func (r *report) printBudget(out io.Writer) {
	fmt.Fprintf(out, "\nBudget (DESIGN.md \"Performance budget\"), at %d conns:\n", r.BudgetConns)
	tw := tabwriter.NewWriter(out, 0, 0, 2, ' ', 0)
	for _, c := range r.Budget {
		verdict := "FAIL"
		if c.Pass {
			verdict = "ok"
		}
		fmt.Fprintf(tw, "  %s\t%s\t"+c.format+"\t%s\n", verdict, c.Name, c.Value, c.Limit)
	}
	tw.Flush()
}

// writeJSON writes the report to path.
func (r *report) writeJSON(path string) error {
	b, err := json.MarshalIndent(r, "", "  ")
	if err != nil {
		return err
	}
	return os.WriteFile(path, append(b, '\n'), 0o644)
}

// div returns a/b, or 0 when b is 0 (a step with no successful request).
func div(a, b float64) float64 {
	if b == 0 {
		return 0
	}
	return a / b
}

func mib(b int64) float64 { return float64(b) / (1 << 20) }
