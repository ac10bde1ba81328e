// Package deploy checks the shipped Prometheus rules and Grafana dashboards:
// the rules parse (promtool), the dashboards are valid JSON, and every
// metric they use is one the server really exports.
package deploy

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/coffer-dev/coffer/client"
	"github.com/coffer-dev/coffer/internal/auditsink"
	"github.com/coffer-dev/coffer/internal/core"
	"github.com/coffer-dev/coffer/internal/server"
	"github.com/coffer-dev/coffer/internal/storage/mem"
)

const rules = "prometheus/coffer-rules.yml"

func TestRulesParse(t *testing.T) {
	if _, err := exec.LookPath("promtool"); err != nil {
		if os.Getenv("COFFER_REQUIRE_PROMTOOL") != "" {
			t.Fatal("promtool is not installed (Debian package prometheus); .ci/run installs it")
		}
		t.Skip("promtool not installed")
	}
	out, err := exec.Command("promtool", "check", "rules", rules).CombinedOutput()
	if err != nil {
		t.Fatalf("promtool check rules: %v\n%s", err, out)
	}
}

var metricName = regexp.MustCompile(`\b((?:coffer|go|process)_[a-z0-9_]+)\b`)

// usedMetrics returns the metric names the rules and dashboards query.
func usedMetrics(t *testing.T) map[string][]string {
	t.Helper()
	used := map[string][]string{}
	add := func(file, expr string) {
		for _, m := range metricName.FindAllString(expr, -1) {
			used[m] = append(used[m], file)
		}
	}
	b, err := os.ReadFile(rules)
	if err != nil {
		t.Fatal(err)
	}
	for _, line := range strings.Split(string(b), "\n") {
		if strings.Contains(line, "expr:") {
			add(rules, line)
		}
	}
	dashboards, _ := filepath.Glob("grafana/*.json")
	if len(dashboards) != 3 {
		t.Fatalf("want the executive, on-call and debug dashboards, found %v", dashboards)
	}
	for _, f := range dashboards {
		raw, _ := os.ReadFile(f)
		var d struct {
			Title  string `json:"title"`
			Panels []struct {
				Title   string `json:"title"`
				Targets []struct {
					Expr string `json:"expr"`
				} `json:"targets"`
			} `json:"panels"`
		}
		if err := json.Unmarshal(raw, &d); err != nil || d.Title == "" || len(d.Panels) == 0 {
			t.Fatalf("%s is not a dashboard: %v", f, err)
		}
		for _, p := range d.Panels {
			for _, tg := range p.Targets {
				add(f, tg.Expr)
			}
		}
	}
	return used
}

// exported starts a real server, makes each kind of event happen once, and
// returns the metric names /v1/sys/metrics exports.
func exported(t *testing.T) map[string]bool {
	t.Helper()
	siem := httptest.NewServer(http.HandlerFunc(func(http.ResponseWriter, *http.Request) {}))
	defer siem.Close()
	dir := t.TempDir()
	s, err := server.New(server.Options{Backend: mem.New(), Address: "127.0.0.1:0",
		Audit:      core.AuditConfig{Dir: filepath.Join(dir, "audit")},
		AuditSinks: map[string]auditsink.Sink{"siem": &auditsink.Webhook{URL: siem.URL}}})
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	s.Start(ctx)
	defer s.Shutdown(context.Background())
	res, _ := s.Core.Init(ctx, 1, 1)
	s.Core.Unseal(ctx, res.Keys[0])
	c, _ := client.New(client.Config{Address: s.URL(), Token: res.RootToken, MaxRetries: -1})
	c.PutText(ctx, "prod/x", "v")
	c.WithToken("").Get(ctx, "prod/x", client.Current())
	c.LoginUserpass(ctx, "nobody", "wrong password", "")
	req, _ := http.NewRequest("GET", s.URL()+"/v1/sys/metrics", nil)
	req.Header.Set("X-Coffer-Token", res.RootToken)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	names := map[string]bool{}
	for _, line := range strings.Split(string(body), "\n") {
		if strings.HasPrefix(line, "# TYPE ") {
			f := strings.Fields(line)
			names[f[2]] = true
			if f[3] == "histogram" {
				for _, suffix := range []string{"_bucket", "_count", "_sum"} {
					names[f[2]+suffix] = true
				}
			}
		}
	}
	return names
}

func TestEveryMetricUsedIsExported(t *testing.T) {
	have := exported(t)
	for name, files := range usedMetrics(t) {
		if !have[name] {
			t.Errorf("%s is used by %v but the server does not export it", name, files)
		}
	}
}
