//go:build linux

// Command bench measures a real Coffer server against a trivial Go net/http
// handler in the same run and prints the figures of the performance budget in
// DESIGN.md ("Performance budget") as absolute numbers and as ratios to the
// trivial handler.
//
// Run it from anywhere inside the module:
//
//	go run ./bench                       # 10 s per step, 1, 8 and 32 connections
//	go run ./bench -duration 3s -json out.json
//
// It builds cmd/coffer into a temporary directory, starts it as a subprocess
// on bolt storage (fsync on) with the key-file seal, and starts the trivial
// handler as a second subprocess (this binary re-executed with a hidden
// -trivial ADDR argument) so that both servers' CPU time is read the same way,
// from /proc/PID/stat. The load generator is closed-loop: N goroutines, each
// sending its next request as soon as the previous answer is read, over
// keep-alive connections on 127.0.0.1. Everything runs on one machine, so the
// load generator competes with the server for CPU; the ratios to the trivial
// handler, measured under the same conditions, are the figures to compare.
//
// Linux only: it reads /proc.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// options are the command-line settings.
type options struct {
	duration time.Duration // measured window of each step
	warmup   time.Duration // unmeasured load before each window
	conns    []int         // concurrency levels
	jsonPath string        // write the report as JSON here, if set
	keep     bool          // keep the temporary directory
	ha       string        // -ha: PostgreSQL URL or "auto"; runs the multi-node steps only
}

// trivialArg is the hidden argument that turns this binary into the trivial
// server subprocess: bench -trivial ADDR.
const trivialArg = "-trivial"

func main() {
	if len(os.Args) == 3 && os.Args[1] == trivialArg {
		if err := serveTrivial(os.Args[2]); err != nil {
			fmt.Fprintln(os.Stderr, "bench -trivial:", err)
			os.Exit(1)
		}
		return
	}
	o, err := parseFlags()
	if err != nil {
		fmt.Fprintln(os.Stderr, "bench:", err)
		os.Exit(2)
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, o); err != nil {
		fmt.Fprintln(os.Stderr, "bench:", err)
		if ctx.Err() != nil {
			stop()
			os.Exit(130)
		}
		os.Exit(1)
	}
}

// parseFlags reads and checks the command line.
func parseFlags() (options, error) {
	var o options
	var conns string
	flag.DurationVar(&o.duration, "duration", 10*time.Second, "measured duration of each step")
	flag.DurationVar(&o.warmup, "warmup", time.Second, "unmeasured warm-up before each step")
	flag.StringVar(&conns, "conns", "1,8,32", "comma-separated concurrency levels (connections)")
	flag.StringVar(&o.jsonPath, "json", "", "also write the results as JSON to this file")
	flag.BoolVar(&o.keep, "keep", false, "keep the temporary directory (binary, data, server logs)")
	flag.StringVar(&o.ha, "ha", "", `instead of the budget run, measure 1 and 3 nodes on PostgreSQL: a URL of an empty database, or "auto" for a throwaway server`)
	flag.Parse()
	if flag.NArg() > 0 {
		return o, fmt.Errorf("unexpected arguments %q", flag.Args())
	}
	if o.duration <= 0 || o.duration > time.Hour || o.warmup < 0 || o.warmup > time.Hour {
		return o, errors.New("-duration must be in (0, 1h] and -warmup in [0, 1h]")
	}
	for f := range strings.SplitSeq(conns, ",") {
		n, err := strconv.Atoi(strings.TrimSpace(f))
		if err != nil || n < 1 || n > 4096 {
			return o, fmt.Errorf("-conns: %q is not a number from 1 to 4096", f)
		}
		o.conns = append(o.conns, n)
	}
	return o, nil
}

// run performs the whole benchmark: set-up, the load steps, memory, restart,
// and the report.
func run(ctx context.Context, o options) error {
	dir, err := os.MkdirTemp("", "coffer-bench-")
	if err != nil {
		return err
	}
	if o.keep {
		defer fmt.Printf("\nkept %s\n", dir)
	} else {
		defer os.RemoveAll(dir)
	}

	fmt.Fprintln(os.Stderr, "building coffer ...")
	bin, err := buildCoffer(ctx, dir)
	if err != nil {
		return err
	}
	if o.ha != "" {
		return runHA(ctx, o, dir, bin)
	}
	trivial, err := startTrivial(ctx, dir)
	if err != nil {
		return err
	}
	defer trivial.kill()
	cof, err := startCoffer(ctx, dir, bin)
	if err != nil {
		return err
	}
	defer func() { cof.kill() }() // cof is replaced by the restart

	token, err := initCoffer(ctx, cof)
	if err != nil {
		return err
	}
	if err := writeReadSecret(ctx, cof.url, token); err != nil {
		return err
	}

	noAuditDir := filepath.Join(dir, "noaudit")
	os.MkdirAll(noAuditDir, 0o700)
	plain, err := startCofferWith(ctx, noAuditDir, bin, "audit {\n  enabled = false\n}")
	if err != nil {
		return err
	}
	defer plain.kill()
	plainToken, err := initCoffer(ctx, plain)
	if err != nil {
		return err
	}
	if err := writeReadSecret(ctx, plain.url, plainToken); err != nil {
		return err
	}

	rep := newReport(o)
	if err := runSteps(ctx, o, rep, trivial, cof, token, plain, plainToken); err != nil {
		return err
	}
	plain.kill()
	if rep.Coffer, err = readMemory(cof.pid()); err != nil {
		return err
	}
	rep.Trivial, _ = readMemory(trivial.pid())
	rep.DBBytes = fileSize(dbPath(dir))

	fmt.Fprintln(os.Stderr, "restarting coffer ...")
	cof, rep.Restart, err = restartCoffer(ctx, cof)
	if err != nil {
		return err
	}

	rep.finish()
	rep.print(os.Stdout)
	if o.jsonPath != "" {
		return rep.writeJSON(o.jsonPath)
	}
	return nil
}

// runSteps runs every load step and adds its result to rep: reads for each
// concurrency level first (trivial and Coffer back to back, so their ratio
// compares like with like), then writes, which grow the database.
func runSteps(ctx context.Context, o options, rep *report, trivial, cof *proc, token string, plain *proc, plainToken string) error {
	steps := make([]target, 0, 4*len(o.conns))
	for _, c := range o.conns {
		steps = append(steps, trivialTarget(trivial, c), readTarget(cof, token, c), readNoAuditTarget(plain, plainToken, c))
	}
	for _, c := range o.conns {
		steps = append(steps, writeTarget(cof, token, c))
	}
	for _, t := range steps {
		fmt.Fprintf(os.Stderr, "%-13s %4d conns ...\n", t.name, t.conns)
		nodes := []*proc{t.server}
		records, syncs := sumMetric(ctx, nodes, t.token, "coffer_audit_records_total"), sumMetric(ctx, nodes, t.token, "coffer_audit_syncs_total")
		res, err := runLoad(ctx, t, o.warmup, o.duration)
		if err != nil {
			return err
		}
		if n := sumMetric(ctx, nodes, t.token, "coffer_audit_syncs_total") - syncs; n > 0 {
			res.AuditRecordsPerSync = (sumMetric(ctx, nodes, t.token, "coffer_audit_records_total") - records) / n
		}
		rep.add(res)
	}
	return nil
}
