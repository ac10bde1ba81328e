package server

import (
	"context"
	"io"
	"net/http"
	"strconv"
	"strings"
	"testing"

	"github.com/coffer-dev/coffer/client"
)

// metricValue scrapes the server and returns the value of the series whose
// line starts with series (name and labels), or -1 when it is absent.
func metricValue(t *testing.T, s *Server, tok, series string) float64 {
	t.Helper()
	req, _ := http.NewRequest("GET", s.URL()+"/v1/sys/metrics", nil)
	req.Header.Set("X-Coffer-Token", tok)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	for _, line := range strings.Split(string(b), "\n") {
		if rest, ok := strings.CutPrefix(line, series+" "); ok {
			v, err := strconv.ParseFloat(strings.TrimSpace(rest), 64)
			if err != nil {
				t.Fatalf("%s: %v", line, err)
			}
			return v
		}
	}
	return -1
}

// TestServerMetricsMove: the leader gauge, storage latency and rotation
// (M3) series exist on a single server and move when their events happen.
func TestServerMetricsMove(t *testing.T) {
	s, c, _ := startServer(t)
	ctx := context.Background()
	tok := c.Token()
	if v := metricValue(t, s, tok, "coffer_leader"); v != 1 {
		t.Errorf("coffer_leader = %v on a single server, want 1", v)
	}
	getsBefore := metricValue(t, s, tok, `coffer_storage_operation_duration_seconds_count{op="get"}`)
	okBefore := metricValue(t, s, tok, `coffer_rotation_attempts_total{outcome="success",rotator="password"}`)
	if okBefore != 0 {
		t.Fatalf("rotation successes before any rotation = %v, want a 0 series", okBefore)
	}
	if _, err := c.PutText(ctx, "app/key", "v1"); err != nil {
		t.Fatal(err)
	}
	if _, err := c.SetRotation(ctx, "app/key", client.RotationPolicy{Rotator: "password", Schedule: "every 30d"}); err != nil {
		t.Fatal(err)
	}
	if _, err := c.Rotate(ctx, "app/key", client.RotateOptions{}); err != nil {
		t.Fatal(err)
	}
	if v := metricValue(t, s, tok, `coffer_rotation_attempts_total{outcome="success",rotator="password"}`); v != 1 {
		t.Errorf("rotation successes after one rotation = %v, want 1", v)
	}
	if v := metricValue(t, s, tok, `coffer_storage_operation_duration_seconds_count{op="get"}`); v <= getsBefore {
		t.Errorf("storage get count did not move: %v -> %v", getsBefore, v)
	}
	if v := metricValue(t, s, tok, "coffer_rotation_failed_secrets"); v != 0 {
		t.Errorf("coffer_rotation_failed_secrets = %v, want 0", v)
	}
}
