package agent

import (
	"context"
	"encoding/json"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
)

// TestAgentRefusesBrowserRequests: a web page that rebinds its host name
// to 127.0.0.1 makes its browser send that name as the Host, and an
// Origin; the agent must not give it a secret, on either listener, while
// programs (no Origin, a loopback Host) keep working.
func TestAgentRefusesBrowserRequests(t *testing.T) {
	t.Parallel()
	c, cr := startCoffer(t, "", "")
	c.client().PutText(context.Background(), "app/db", "pw1")
	hcl := strings.Replace(agentConfig(c.url(), cr, ""), `listen_tcp  = "127.0.0.1:0"`,
		`listen_tcp  = "127.0.0.1:0"
  allowed_hosts = ["Coffer-Agent"]`, 1)
	ta := startAgent(t, hcl)
	_, port, _ := net.SplitHostPort(ta.TCPAddr().String())

	for _, tc := range []struct {
		name, host, origin string
		unix               bool
		status             int
		code               string
	}{
		{name: "rebinding host and origin", host: "attacker.example:" + port, origin: "http://attacker.example:" + port, status: 403, code: "host_refused"},
		{name: "rebinding host without origin", host: "attacker.example:" + port, status: 403, code: "host_refused"},
		{name: "rebinding host without port", host: "attacker.example", status: 403, code: "host_refused"},
		{name: "host ending like localhost", host: "evil-localhost:" + port, status: 403, code: "host_refused"},
		{name: "localhost subdomain", host: "localhost.attacker.example:" + port, status: 403, code: "host_refused"},
		{name: "loopback host with a foreign port", host: "127.0.0.1:1", status: 403, code: "host_refused"},
		{name: "non-loopback address", host: "10.0.0.1:" + port, status: 403, code: "host_refused"},
		{name: "bare IPv6", host: "::1", status: 403, code: "host_refused"},
		{name: "loopback host with origin", host: "127.0.0.1:" + port, origin: "http://127.0.0.1:" + port, status: 403, code: "origin_refused"},
		{name: "localhost with null origin", host: "localhost:" + port, origin: "null", status: 403, code: "origin_refused"},
		{name: "origin over the socket", unix: true, origin: "http://attacker.example", status: 403, code: "origin_refused"},
		{name: "127.0.0.1 with port", host: "127.0.0.1:" + port, status: 200},
		{name: "127.0.0.1 without port", host: "127.0.0.1", status: 200},
		{name: "another loopback address", host: "127.0.0.2:" + port, status: 200},
		{name: "localhost with port", host: "localhost:" + port, status: 200},
		{name: "LOCALHOST without port", host: "LOCALHOST", status: 200},
		{name: "[::1] with port", host: "[::1]:" + port, status: 200},
		{name: "[::1] without port", host: "[::1]", status: 200},
		{name: "allowed host with port", host: "coffer-agent:" + port, status: 200},
		{name: "allowed host without port", host: "COFFER-AGENT", status: 200},
		{name: "any host over the socket", unix: true, host: "attacker.example", status: 200},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cl, url := ta.tcp, ta.tcpURL+"/v1/secrets/app/db"
			if tc.unix {
				cl, url = ta.unix, "http://agent/v1/secrets/app/db"
			}
			req, _ := http.NewRequest("GET", url, nil)
			if tc.host != "" {
				req.Host = tc.host
			}
			if tc.origin != "" {
				req.Header.Set("Origin", tc.origin)
			}
			resp, err := cl.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			b, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if resp.StatusCode != tc.status {
				t.Fatalf("GET with Host %q, Origin %q = %d %s, want %d", tc.host, tc.origin, resp.StatusCode, b, tc.status)
			}
			if tc.status == 200 {
				if v := valueOf(t, string(b)); v != "pw1" {
					t.Fatalf("value = %q", v)
				}
				return
			}
			if strings.Contains(string(b), "pw1") {
				t.Fatalf("a refused request got the secret: %s", b)
			}
			var e struct {
				Error struct{ Code, Message string } `json:"error"`
			}
			if err := json.Unmarshal(b, &e); err != nil || e.Error.Code != tc.code || e.Error.Message == "" {
				t.Fatalf("body = %s, want error code %q", b, tc.code)
			}
		})
	}
	// The health endpoint is behind the same rules.
	req, _ := http.NewRequest("GET", ta.tcpURL+"/v1/sys/health", nil)
	req.Host = "attacker.example:" + port
	resp, err := ta.tcp.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 403 {
		t.Fatalf("health with a rebinding Host = %d, want 403", resp.StatusCode)
	}
}

func TestHostGuardAllocatesNothing(t *testing.T) {
	g := &hostGuard{port: ":8211", allowed: []string{"coffer-agent"}}
	for _, h := range []string{"127.0.0.1:8211", "[::1]:8211", "localhost", "coffer-agent:8211", "attacker.example:8211"} {
		if n := testing.AllocsPerRun(100, func() { g.allowedHost(h) }); n != 0 {
			t.Errorf("allowedHost(%q) allocates %v times", h, n)
		}
	}
	h := &hostGuard{next: http.NotFoundHandler(), port: ":8211"}
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, httptest.NewRequest("GET", "http://attacker.example:8211/v1/secrets/app/db", nil))
	if rec.Code != 403 || !strings.Contains(rec.Body.String(), "host_refused") {
		t.Fatalf("guard = %d %s", rec.Code, rec.Body.String())
	}
}

func TestParseConfigAllowedHosts(t *testing.T) {
	auth := `auto_auth {
  method     = "token"
  token_file = "/run/token"
}
`
	c, err := ParseConfig([]byte(auth+`cache {
  listen_tcp    = "127.0.0.1:8211"
  allowed_hosts = ["Coffer-Agent", "agent.local"]
}`), "agent.hcl")
	if err != nil {
		t.Fatal(err)
	}
	if got := strings.Join(c.Cache.allowedHosts, ","); got != "coffer-agent,agent.local" {
		t.Fatalf("allowedHosts = %q", got)
	}
	for _, tc := range []struct{ name, cache, want string }{
		{"without listen_tcp", `listen_unix = "/run/a.sock"
  allowed_hosts = ["coffer-agent"]`, "allowed_hosts needs listen_tcp"},
		{"with a port", `listen_tcp = "127.0.0.1:8211"
  allowed_hosts = ["coffer-agent:8211"]`, `allowed_hosts "coffer-agent:8211"`},
		{"a wildcard", `listen_tcp = "127.0.0.1:8211"
  allowed_hosts = ["*"]`, `allowed_hosts "*"`},
		{"a URL", `listen_tcp = "127.0.0.1:8211"
  allowed_hosts = ["http://coffer-agent"]`, `allowed_hosts "http://coffer-agent"`},
		{"empty", `listen_tcp = "127.0.0.1:8211"
  allowed_hosts = [""]`, `allowed_hosts ""`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := ParseConfig([]byte(auth+"cache {\n  "+tc.cache+"\n}"), "agent.hcl")
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("ParseConfig = %v, want an error containing %q", err, tc.want)
			}
		})
	}
}
