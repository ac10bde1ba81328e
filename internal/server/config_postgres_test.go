package server

import (
	"strings"
	"testing"
)

func TestPostgresConfig(t *testing.T) {
	const listener = "listener \"tcp\" { address = \"127.0.0.1:8200\" }\n"
	const audit = "audit { path = \"/var/lib/coffer/audit\" }\n"
	t.Setenv(PostgresURLEnv, "")
	tests := []struct {
		name, body, env string
		wantErr         string // "" for success
	}{
		{"url in file", `storage "postgres" { url = "postgres://db/coffer" }` + "\n" + audit, "", ""},
		{"url from env", `storage "postgres" {}` + "\n" + audit, "postgres://db/coffer", ""},
		{"full", `storage "postgres" {
  url = "postgres://db/coffer"
  max_connections = 32
  timeout = "3s"
}
cluster {
  node_id = "coffer-1"
  api_addr = "https://coffer-1.internal:8200"
}
` + audit, "", ""},
		{"no url", `storage "postgres" {}` + "\n" + audit, "", "needs url"},
		{"path", `storage "postgres" { path = "/x" }` + "\n" + audit, "postgres://db", "takes url, not path"},
		{"unknown field", `storage "postgres" { dsn = "x" }` + "\n" + audit, "postgres://db", "dsn"},
		{"no audit path", `storage "postgres" { url = "postgres://db" }`, "", "audit"},
		{"audit off", `storage "postgres" { url = "postgres://db" }` + "\naudit { enabled = false }\n", "", ""},
		{"bad timeout", `storage "postgres" { timeout = "1ms" }` + "\n" + audit, "postgres://db", "timeout"},
		{"bad api_addr", `storage "postgres" {}` + "\ncluster { api_addr = \"coffer-1:8200\" }\n" + audit, "postgres://db", "api_addr"},
		{"cluster on bolt", `storage "bolt" { path = "/x.db" }` + "\ncluster { node_id = \"a\" }\n", "", "needs storage \"postgres\""},
		{"url on bolt", "storage \"bolt\" {\n path = \"/x.db\"\n url = \"postgres://db\"\n}\n", "", "takes only path"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Setenv(PostgresURLEnv, tt.env)
			cfg, err := ParseConfig([]byte(listener+tt.body), "t.hcl")
			if tt.wantErr == "" {
				if err != nil {
					t.Fatalf("ParseConfig = %v, want success", err)
				}
				if cfg.Storage.Type == "postgres" && cfg.Storage.PostgresURL() == "" {
					t.Fatal("PostgresURL() is empty")
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
				t.Fatalf("ParseConfig = %v, want an error naming %q", err, tt.wantErr)
			}
		})
	}
}
