package server

import (
	"strings"
	"testing"
)

func TestTelemetryConfig(t *testing.T) {
	base := `listener "tcp" { address = "127.0.0.1:8200" }
storage "bolt" { path = "/tmp/x.db" }
`
	cfg, err := ParseConfig([]byte(base), "t.hcl")
	if err != nil {
		t.Fatal(err)
	}
	if m := cfg.MetricsAccess(); m.Unauthenticated || len(m.AllowedCIDRs) != 0 {
		t.Fatalf("default metrics access = %+v, want a token", m)
	}
	cfg, err = ParseConfig([]byte(base+`telemetry {
  unauthenticated_metrics_access = true
  metrics_allowed_cidrs = ["10.0.0.0/8", "127.0.0.1/32"]
}`), "t.hcl")
	if err != nil {
		t.Fatal(err)
	}
	if m := cfg.MetricsAccess(); !m.Unauthenticated || len(m.AllowedCIDRs) != 2 || m.AllowedCIDRs[1].String() != "127.0.0.1/32" {
		t.Fatalf("metrics access = %+v", m)
	}
	for body, want := range map[string]string{
		`telemetry { metrics_allowed_cidrs = ["10.0.0.0/8"] }`:                                                "only with unauthenticated_metrics_access",
		"telemetry {\n unauthenticated_metrics_access = true\n metrics_allowed_cidrs = [\"10.0.0.300/8\"]\n}": "not a CIDR",
		`telemetry { public = true }`: "public",
	} {
		_, err := ParseConfig([]byte(base+body), "t.hcl")
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("%s: err = %v, want it to name %q", body, err, want)
		}
	}
}
