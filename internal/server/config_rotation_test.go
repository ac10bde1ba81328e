package server

import (
	"slices"
	"strings"
	"testing"
)

func TestRotationConfig(t *testing.T) {
	base := `listener "tcp" { address = "127.0.0.1:8200" }
storage "bolt" { path = "/tmp/x.db" }
`
	cfg, err := ParseConfig([]byte(base), "t.hcl")
	if err != nil {
		t.Fatal(err)
	}
	if r := cfg.RotationConfig(); r.WebhookAllowPrivate || len(r.WebhookAllowedHosts) != 0 {
		t.Fatalf("default rotation config = %+v, want private addresses refused", r)
	}
	cfg, err = ParseConfig([]byte(base+`rotation { webhook_allowed_hosts = ["hooks.internal.example", "10.0.0.5", "fd00::5"] }`), "t.hcl")
	if err != nil {
		t.Fatal(err)
	}
	if r := cfg.RotationConfig(); r.WebhookAllowPrivate || !slices.Equal(r.WebhookAllowedHosts, []string{"hooks.internal.example", "10.0.0.5", "fd00::5"}) {
		t.Fatalf("rotation config = %+v", r)
	}
	for body, want := range map[string]string{
		`rotation { webhook_allowed_hosts = ["https://hooks.example.com"] }`: "not a host name",
		`rotation { webhook_allowed_hosts = ["10.0.0.5:443"] }`:              "not a host name",
		`rotation { webhook_allowed_hosts = [""] }`:                          "not a host name",
		`rotation { webhook_timeout = "1m" }`:                                "webhook_timeout",
	} {
		_, err := ParseConfig([]byte(base+body), "t.hcl")
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("%s: err = %v, want it to name %q", body, err, want)
		}
	}
}
