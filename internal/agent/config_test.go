package agent

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

const validConfig = `
server  = "https://coffer.example:8210"
auto_auth {
  method         = "approle"
  role_id_file   = "/etc/coffer/role-id"
  secret_id_file = "/run/secrets/secret-id"
  remove_secret_id_file_after_reading = false
}
cache {
  listen_unix = "/run/coffer/agent.sock"
  socket_mode = "0660"
  listen_tcp  = "127.0.0.1:8211"
  ttl         = "2m"
  max_stale   = "30m"
}
template {
  contents    = "PW={{ secret \"app/db\" }}"
  destination = "/etc/app/a.env"
  perms       = "0640"
  command     = "systemctl reload app"
}
template {
  contents    = "K={{ secretField \"app/api\" \"key\" }} V={{ secretVersion \"app/api\" }} H={{ env \"HOME\" }}"
  destination = "/etc/app/b.env"
  signal      = "HUP"
  pid_file    = "/run/app.pid"
}
metrics_listen = "0.0.0.0:8212"
`

func TestParseConfig(t *testing.T) {
	c, err := ParseConfig([]byte(validConfig), "agent.hcl")
	if err != nil {
		t.Fatalf("ParseConfig(valid) = %v", err)
	}
	if c.Cache.ttl != 2*time.Minute || c.Cache.maxStale != 30*time.Minute || c.Cache.socketMode != 0o660 || c.Cache.MaxEntries != DefaultMaxEntries {
		t.Fatalf("cache = %+v", c.Cache)
	}
	if len(c.Templates) != 2 || c.Templates[0].perms != 0o640 || c.Templates[1].perms != 0o600 || c.Templates[0].commandTimeout != DefaultCommandTimeout {
		t.Fatalf("templates = %+v", c.Templates)
	}

	// Defaults: a cache block with a listener only.
	c, err = ParseConfig([]byte(`
auto_auth {
  method     = "token"
  token_file = "/run/token"
}
cache {
  listen_tcp = "[::1]:8211"
}`), "agent.hcl")
	if err != nil {
		t.Fatal(err)
	}
	if c.Cache.ttl != DefaultTTL || c.Cache.maxStale != DefaultMaxStale || c.Cache.socketMode != 0o600 {
		t.Fatalf("defaults = %+v", c.Cache)
	}
}

func TestParseConfigErrors(t *testing.T) {
	src := filepath.Join(t.TempDir(), "t.tmpl")
	os.WriteFile(src, []byte("{{ secret \"x\" }"), 0o600)
	const auth = `auto_auth {
  method         = "approle"
  role_id_file   = "/r"
  secret_id_file = "/s"
}
`
	const listen = `cache {
  listen_tcp = "127.0.0.1:8211"
}
`
	for _, tc := range []struct {
		name, src, want string
	}{
		{"unknown attribute", auth + listen + `colour = "blue"`, `Unsupported argument; An argument named "colour" is not expected here`},
		{"unknown attribute in a block", auth + `cache {
  listen_tcp = "127.0.0.1:8211"
  tll        = "5m"
}`, `An argument named "tll" is not expected here`},
		{"unknown block", auth + listen + `vault {}`, `Blocks of type "vault" are not expected here`},
		{"no auto_auth", listen, `Missing auto_auth block`},
		{"non-loopback listen_tcp", auth + `cache {
  listen_tcp = "0.0.0.0:8211"
}`, "loopback only"},
		{"listen_tcp on every address", auth + `cache {
  listen_tcp = ":8211"
}`, "loopback only"},
		{"listen_tcp on a public address", auth + `cache {
  listen_tcp = "10.1.2.3:8211"
}`, "loopback only"},
		{"unknown method", `auto_auth {
  method = "kerberos"
}
` + listen, `auto_auth method "kerberos"`},
		{"approle without secret_id_file", `auto_auth {
  method       = "approle"
  role_id_file = "/r"
}
` + listen, "needs secret_id_file"},
		{"jwt with a secret_id_file", `auto_auth {
  method         = "jwt"
  role           = "app"
  jwt_file       = "/j"
  secret_id_file = "/s"
}
` + listen, `does not take secret_id_file`},
		{"world-writable socket", auth + `cache {
  listen_unix = "/run/a.sock"
  socket_mode = "0666"
}`, "gives other users access"},
		{"bad ttl", auth + `cache {
  listen_tcp = "127.0.0.1:8211"
  ttl        = "five minutes"
}`, `cache ttl "five minutes"`},
		{"max_stale below ttl", auth + `cache {
  listen_tcp = "127.0.0.1:8211"
  ttl        = "10m"
  max_stale  = "1m"
}`, "max_stale (1m0s) must be 0"},
		{"nothing to do", auth, "nothing to do"},
		{"bad server", auth + listen + `server = "coffer:8210"`, `want a URL`},
		{"world-readable template", auth + `template {
  contents    = "x"
  destination = "/c"
  perms       = "0644"
}`, "gives other users access to a file of secrets"},
		{"template with source and contents", auth + `template {
  source      = "/a"
  contents    = "b"
  destination = "/c"
}`, "exactly one of source and contents"},
		{"template syntax", auth + `template {
  source      = "` + src + `"
  destination = "/c"
}`, "unexpected"},
		{"template unknown function", auth + `template {
  contents    = "{{ vault \"x\" }}"
  destination = "/c"
}`, `function "vault" not defined`},
		{"signal without pid_file", auth + `template {
  contents    = "x"
  destination = "/c"
  signal      = "HUP"
}`, "signal needs pid_file"},
		{"unknown signal", auth + `template {
  contents    = "x"
  destination = "/c"
  signal      = "RELOAD"
  pid_file    = "/p"
}`, `signal "RELOAD"`},
		{"bad perms", auth + `template {
  contents    = "x"
  destination = "/c"
  perms       = "rw-------"
}`, `perms "rw-------"`},
		{"same destination twice", auth + `template {
  contents    = "x"
  destination = "/c"
}
template {
  contents    = "y"
  destination = "/c"
}`, "used by another template"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := ParseConfig([]byte(tc.src), "agent.hcl")
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("ParseConfig = %v, want an error containing %q", err, tc.want)
			}
		})
	}
}
