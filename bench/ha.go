//go:build linux

package main

import (
	"context"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"text/tabwriter"

	"github.com/coffer-dev/coffer/internal/testdb"
)

// runHA is the -ha mode: reads/s and writes/s of Coffer on PostgreSQL with
// one node, then with three nodes sharing the database, the load spread
// over the nodes round-robin by connection (as a load balancer would).
// Every process, PostgreSQL included, shares this machine's cores, so the
// figures show the cost of the shared database, not a scale-out.
func runHA(ctx context.Context, o options, dir, bin string) error {
	url := o.ha
	if url == "auto" {
		fmt.Fprintln(os.Stderr, "starting a throwaway PostgreSQL ...")
		pg, err := testdb.StartPostgres()
		if err != nil {
			return err
		}
		defer pg.Remove()
		url = pg.URL
	}
	var nodes []*proc
	defer func() {
		for _, n := range nodes {
			n.kill()
		}
	}()
	start := func(i int) (*proc, error) {
		ndir := filepath.Join(dir, "ha"+strconv.Itoa(i))
		if err := os.MkdirAll(ndir, 0o700); err != nil {
			return nil, err
		}
		addr, err := freeAddr()
		if err != nil {
			return nil, err
		}
		cfg := fmt.Sprintf(`listener "tcp" { address = %q }
storage "postgres" { url = %q }
cluster { node_id = "bench-%d" }
seal "keyfile" { path = %q }
audit { path = %q }
`, addr, url, i, filepath.Join(dir, "ha-unseal.key"), filepath.Join(ndir, "audit"))
		cfgPath := filepath.Join(ndir, "coffer.hcl")
		if err := os.WriteFile(cfgPath, []byte(cfg), 0o600); err != nil {
			return nil, err
		}
		p, err := startProc("coffer-"+strconv.Itoa(i), "http://"+addr, filepath.Join(ndir, "coffer.log"), bin, "server", "--config", cfgPath)
		if err != nil {
			return nil, err
		}
		nodes = append(nodes, p)
		return p, p.waitStatus(ctx, "/v1/sys/health", 200, 501, 503)
	}
	first, err := start(1)
	if err != nil {
		return err
	}
	token, err := initCoffer(ctx, first)
	if err != nil {
		return err
	}
	if err := writeReadSecret(ctx, first.url, token); err != nil {
		return err
	}
	var results []result
	steps := func(label string) error {
		for _, kind := range []string{"read", "write"} {
			for _, c := range o.conns {
				t := spreadTarget(nodes, token, kind, label, c)
				fmt.Fprintf(os.Stderr, "%-22s %4d conns ...\n", t.name, c)
				before := sumMetric(ctx, nodes, token, "coffer_storage_conflict_retries_total")
				commits := sumMetric(ctx, nodes, token, "coffer_storage_commits_total")
				res, err := runLoad(ctx, t, o.warmup, o.duration)
				if err != nil {
					return err
				}
				res.Retries = sumMetric(ctx, nodes, token, "coffer_storage_conflict_retries_total") - before
				res.Commits = sumMetric(ctx, nodes, token, "coffer_storage_commits_total") - commits
				results = append(results, res)
			}
		}
		return nil
	}
	if err := steps("1 node"); err != nil {
		return err
	}
	for i := 2; i <= 3; i++ {
		p, err := start(i)
		if err != nil {
			return err
		}
		if err := p.waitStatus(ctx, "/v1/sys/health/ready", http.StatusOK); err != nil {
			return err
		}
	}
	if err := steps("3 nodes"); err != nil {
		return err
	}
	w := tabwriter.NewWriter(os.Stdout, 0, 4, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(w, "step\tconns\treq/s\tp50 ms\tp99 ms\terrors\tcommits\tconflict retries\t")
	for _, r := range results {
		fmt.Fprintf(w, "%s\t%d\t%.0f\t%.2f\t%.2f\t%d\t%.0f\t%.0f\t\n", r.Target, r.Conns, r.RPS, r.P50Ms, r.P99Ms, r.Errors, r.Commits, r.Retries)
	}
	w.Flush()
	for _, r := range results {
		if r.FirstError != "" {
			fmt.Printf("first error of %s at %d conns: %s\n", r.Target, r.Conns, r.FirstError)
		}
	}
	return nil
}

// spreadTarget reads the read secret, or writes new secrets, on nodes,
// connection w going to node w mod len(nodes). CPU is charged to the first
// node only, so the per-request CPU columns mean little here.
func spreadTarget(nodes []*proc, token, kind, label string, conns int) target {
	t := target{name: label + " " + kind, conns: conns, server: nodes[0], method: "GET", token: token}
	if kind == "read" {
		t.url = func(w, _ int) string { return nodes[w%len(nodes)].url + "/v1/secrets/" + readSecret }
		return t
	}
	t.method, t.body = "PUT", writeBody
	t.url = func(w, i int) string {
		return nodes[w%len(nodes)].url + "/v1/secrets/bench/ha" + strconv.Itoa(len(nodes)) + "/c" + strconv.Itoa(conns) + "/" +
			strconv.Itoa(w) + "/" + strconv.Itoa(i)
	}
	return t
}

// sumMetric adds up a counter over the nodes' /v1/sys/metrics (0 where absent).
func sumMetric(ctx context.Context, nodes []*proc, token, name string) float64 {
	c := &http.Client{Timeout: callTimeout}
	total := 0.0
	for _, n := range nodes {
		code, body, err := call(ctx, c, "GET", n.url+"/v1/sys/metrics", token, nil)
		if err != nil || code != http.StatusOK {
			continue
		}
		for _, line := range strings.Split(string(body), "\n") {
			if v, ok := strings.CutPrefix(line, name+" "); ok {
				f, _ := strconv.ParseFloat(strings.TrimSpace(v), 64)
				total += f
			}
		}
	}
	return total
}
