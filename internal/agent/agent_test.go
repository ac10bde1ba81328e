package agent

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/coffer-dev/coffer/client"
	"github.com/coffer-dev/coffer/internal/server"
	"github.com/coffer-dev/coffer/internal/storage/bolt"
)

// coffer is a real server on bolt with a key-file seal, so that it can be
// stopped and started again on the same data and address.
type coffer struct {
	t    testing.TB
	dir  string
	addr string
	srv  *server.Server
	root string
}

func (c *coffer) start(addr string) {
	c.t.Helper()
	be, err := bolt.Open(filepath.Join(c.dir, "coffer.db"))
	if err != nil {
		c.t.Fatal(err)
	}
	s, err := server.New(server.Options{Backend: be, KeyFile: filepath.Join(c.dir, "unseal.key"), Address: addr, JobInterval: time.Second})
	if err != nil {
		be.Close()
		c.t.Fatal(err)
	}
	if err := s.Start(context.Background()); err != nil {
		c.t.Fatal(err)
	}
	c.srv, c.addr = s, s.Addr()
}

func (c *coffer) stop() {
	c.t.Helper()
	if c.srv == nil {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := c.srv.Shutdown(ctx); err != nil {
		c.t.Errorf("server shutdown: %v", err)
	}
	c.srv = nil
}

// client returns a fresh root client (fresh: no pooled connection to a
// server that has since stopped).
func (c *coffer) client() *client.Client {
	cl, err := client.New(client.Config{Address: "http://" + c.addr, Token: c.root})
	if err != nil {
		c.t.Fatal(err)
	}
	return cl
}

func (c *coffer) url() string { return "http://" + c.addr }

// startCoffer starts an initialized server with an approle role "app"
// allowed to read app/*, and writes its role_id and a secret_id to files.
// tokenTTL and maxTTL may be "" for the server defaults.
func startCoffer(t testing.TB, tokenTTL, maxTTL string) (*coffer, creds) {
	t.Helper()
	c := &coffer{t: t, dir: t.TempDir()}
	c.start("127.0.0.1:0")
	t.Cleanup(c.stop)
	ctx := context.Background()
	res, err := c.srv.Core.Init(ctx, 0, 0)
	if err != nil {
		t.Fatal(err)
	}
	c.root = res.RootToken
	cl := c.client()
	if _, err := cl.ApplyPolicies(ctx, map[string]string{"app": `path "app/*" { capabilities = ["read"] }`}, false); err != nil {
		t.Fatal(err)
	}
	role := map[string]any{"token_policies": []string{"app"}}
	if tokenTTL != "" {
		role["token_ttl"] = tokenTTL
	}
	if maxTTL != "" {
		role["token_max_ttl"] = maxTTL
	}
	if err := cl.Do(ctx, "PUT", "/v1/auth/approle/role/app", role, nil); err != nil {
		t.Fatal(err)
	}
	var rid struct {
		RoleID string `json:"role_id"`
	}
	if err := cl.Do(ctx, "GET", "/v1/auth/approle/role/app/role-id", nil, &rid); err != nil {
		t.Fatal(err)
	}
	var sid struct {
		SecretID string `json:"secret_id"`
	}
	if err := cl.Do(ctx, "POST", "/v1/auth/approle/role/app/secret-id", map[string]any{}, &sid); err != nil {
		t.Fatal(err)
	}
	cr := creds{dir: t.TempDir()}
	cr.roleIDFile = filepath.Join(cr.dir, "role-id")
	cr.secretIDFile = filepath.Join(cr.dir, "secret-id")
	for p, v := range map[string]string{cr.roleIDFile: rid.RoleID, cr.secretIDFile: sid.SecretID + "\n"} {
		if err := os.WriteFile(p, []byte(v), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	return c, cr
}

type creds struct {
	dir, roleIDFile, secretIDFile string
}

// agentConfig is the HCL of a test agent; extra goes at the top level.
func agentConfig(server string, cr creds, extra string) string {
	return fmt.Sprintf(`
server = %q
auto_auth {
  method         = "approle"
  role_id_file   = %q
  secret_id_file = %q
}
cache {
  listen_unix = %q
  listen_tcp  = "127.0.0.1:0"
  ttl         = "1m"
  max_stale   = "1h"
}
metrics_listen = "127.0.0.1:0"
%s
`, server, cr.roleIDFile, cr.secretIDFile, filepath.Join(cr.dir, "agent.sock"), extra)
}

// testAgent is a started agent and clients for its two listeners.
type testAgent struct {
	*Agent
	unix, tcp *http.Client
	tcpURL    string
	log       *syncBuffer // everything the agent logged
}

// syncBuffer is a bytes.Buffer safe for concurrent writers.
type syncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

func startAgent(t testing.TB, hcl string) *testAgent {
	t.Helper()
	cfg, err := ParseConfig([]byte(hcl), "agent.hcl")
	if err != nil {
		t.Fatal(err)
	}
	logs := &syncBuffer{}
	a, err := New(cfg, Options{Logger: slog.New(slog.NewTextHandler(io.MultiWriter(t.Output(), logs), &slog.HandlerOptions{Level: slog.LevelDebug}))})
	if err != nil {
		t.Fatal(err)
	}
	a.retryMin, a.retryMax = 20*time.Millisecond, 200*time.Millisecond
	if err := a.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		if err := a.Shutdown(ctx); err != nil {
			t.Errorf("agent shutdown: %v", err)
		}
	})
	sock := cfg.Cache.ListenUnix
	ta := &testAgent{
		Agent: a,
		unix: &http.Client{Timeout: 15 * time.Second, Transport: &http.Transport{
			DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
				return (&net.Dialer{}).DialContext(ctx, "unix", sock)
			},
		}},
		tcp:    &http.Client{Timeout: 15 * time.Second},
		tcpURL: "http://" + a.TCPAddr().String(),
		log:    logs,
	}
	eventually(t, "the agent to log in", 5*time.Second, func() bool {
		st, _, _ := ta.get(t, ta.tcp, "/v1/sys/health")
		return st == 200
	})
	return ta
}

// get reads path from the agent through cl.
func (ta *testAgent) get(t testing.TB, cl *http.Client, path string) (int, http.Header, string) {
	t.Helper()
	base := ta.tcpURL
	if cl == ta.unix {
		base = "http://agent"
	}
	resp, err := cl.Get(base + path)
	if err != nil {
		t.Fatalf("GET %s from the agent: %v", path, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, resp.Header, string(b)
}

// metric returns the value of a sample of the agent's /metrics, or -1.
func (ta *testAgent) metric(t testing.TB, series string) float64 {
	t.Helper()
	resp, err := http.Get("http://" + ta.MetricsAddr().String() + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	sc := bufio.NewScanner(resp.Body)
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), series+" "); ok {
			f, _ := strconv.ParseFloat(v, 64)
			return f
		}
	}
	return -1
}

func eventually(t testing.TB, what string, within time.Duration, cond func() bool) {
	t.Helper()
	for deadline := time.Now().Add(within); time.Now().Before(deadline); time.Sleep(20 * time.Millisecond) {
		if cond() {
			return
		}
	}
	t.Fatalf("%s did not happen within %s", what, within)
}

// valueOf extracts the text value of a secret answer.
func valueOf(t testing.TB, body string) string {
	t.Helper()
	var v struct {
		Value string `json:"value"`
	}
	if err := json.Unmarshal([]byte(body), &v); err != nil {
		t.Fatalf("answer %q is not a secret: %v", body, err)
	}
	return v.Value
}

func serverBody(t testing.TB, c *coffer, path string) (int, string) {
	t.Helper()
	req, _ := http.NewRequest("GET", c.url()+path, nil)
	req.Header.Set("X-Coffer-Token", c.root)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

func TestAgentServesReadsFromCache(t *testing.T) {
	t.Parallel()
	c, cr := startCoffer(t, "", "")
	ctx := context.Background()
	cl := c.client()
	cl.PutText(ctx, "app/db", "pw1")
	cl.PutText(ctx, "app/db", "pw2")
	cl.PutText(ctx, "other/db", "not for the app")
	ta := startAgent(t, agentConfig(c.url(), cr, ""))

	fi, err := os.Stat(filepath.Join(cr.dir, "agent.sock"))
	if err != nil || fi.Mode()&os.ModeSocket == 0 || fi.Mode().Perm() != 0o600 {
		t.Fatalf("socket = %v, %v; want a 0600 socket", fi, err)
	}

	for _, tc := range []struct {
		name   string
		cl     *http.Client
		path   string
		status int
		cache  string
	}{
		{"first read over the socket", ta.unix, "/v1/secrets/app/db", 200, "miss"},
		{"second read over the socket", ta.unix, "/v1/secrets/app/db", 200, "hit"},
		{"same read over TCP", ta.tcp, "/v1/secrets/app/db", 200, "hit"},
		{"a version", ta.tcp, "/v1/secrets/app/db?version=1", 200, "miss"},
		{"the version again", ta.unix, "/v1/secrets/app/db?version=1", 200, "hit"},
		{"a stage", ta.tcp, "/v1/secrets/app/db?stage=previous", 200, "miss"},
		{"forbidden", ta.tcp, "/v1/secrets/other/db", 403, "miss"},
		{"forbidden is not cached", ta.tcp, "/v1/secrets/other/db", 403, "miss"},
		{"not found", ta.unix, "/v1/secrets/app/none", 404, "miss"},
		{"not found is not cached", ta.unix, "/v1/secrets/app/none", 404, "miss"},
		{"bad version", ta.tcp, "/v1/secrets/app/db?version=x", 400, "miss"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			status, h, body := ta.get(t, tc.cl, tc.path)
			if status != tc.status || h.Get("X-Coffer-Cache") != tc.cache {
				t.Fatalf("GET %s = %d %q (%s), want %d %q", tc.path, status, h.Get("X-Coffer-Cache"), body, tc.status, tc.cache)
			}
			// The agent answers what the server answers, byte for byte.
			wantStatus, want := serverBody(t, c, tc.path)
			if status == 200 && (wantStatus != 200 || body != want) {
				t.Fatalf("GET %s = %s, the server says %s", tc.path, body, want)
			}
			if status == 200 && h.Get("Content-Type") != "application/json" {
				t.Fatalf("Content-Type = %q", h.Get("Content-Type"))
			}
		})
	}
	if _, _, body := ta.get(t, ta.tcp, "/v1/secrets/app/db?version=1"); valueOf(t, body) != "pw1" {
		t.Fatalf("version 1 = %s", body)
	}

	status, _, body := ta.get(t, ta.tcp, "/v1/sys/health")
	var health struct {
		Authenticated bool `json:"authenticated"`
		Stream        bool `json:"event_stream_connected"`
		Entries       int  `json:"cache_entries"`
	}
	json.Unmarshal([]byte(body), &health)
	if status != 200 || !health.Authenticated || health.Entries != 3 {
		t.Fatalf("health = %d %s", status, body)
	}
	resp, err := ta.tcp.Post(ta.tcpURL+"/v1/secrets/app/db", "application/json", strings.NewReader(`{"value":"x"}`))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 405 {
		t.Fatalf("POST through the agent = %d, want 405", resp.StatusCode)
	}
	if st, _, _ := ta.get(t, ta.tcp, "/v1/secrets/app/../other/db"); st == 200 {
		t.Fatal("a dot-dot path reached another secret")
	}
	if hits := ta.metric(t, `coffer_agent_cache_requests_total{result="hit"}`); hits != 4 {
		t.Fatalf("hit counter = %v, want 4", hits)
	}
	if ratio := ta.metric(t, "coffer_agent_cache_hit_ratio"); ratio <= 0 || ratio >= 1 {
		t.Fatalf("hit ratio = %v", ratio)
	}
}

func TestAgentFollowsEventsAndRendersTemplates(t *testing.T) {
	t.Parallel()
	c, cr := startCoffer(t, "", "")
	ctx := context.Background()
	cl := c.client()
	cl.PutText(ctx, "app/db", "pw-first-7f3a")
	cl.Put(ctx, "app/api", client.PutInput{JSON: json.RawMessage(`{"key":"apikey-51b2","port":54329}`)})
	dest := filepath.Join(cr.dir, "app.env")
	marker := filepath.Join(cr.dir, "marker")
	ta := startAgent(t, agentConfig(c.url(), cr, fmt.Sprintf(`
template {
  contents    = "DB_PASSWORD={{ secret \"app/db\" }}\nDB_VERSION={{ secretVersion \"app/db\" }}\nAPI_KEY={{ secretField \"app/api\" \"key\" }}\nPORT={{ secretField \"app/api\" \"port\" }}\n"
  destination = %q
  command     = "echo reloaded >> %s"
}`, dest, marker)))

	read := func(p string) string {
		b, _ := os.ReadFile(p)
		return string(b)
	}
	want1 := "DB_PASSWORD=pw-first-7f3a\nDB_VERSION=1\nAPI_KEY=apikey-51b2\nPORT=54329\n"
	eventually(t, "the first render", 5*time.Second, func() bool { return read(dest) == want1 && read(marker) == "reloaded\n" })
	if fi, err := os.Stat(dest); err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("rendered file = %v, %v; want mode 0600", fi, err)
	}
	eventually(t, "the event stream", 5*time.Second, func() bool { return ta.follower.connected.Load() })

	if _, h, body := ta.get(t, ta.unix, "/v1/secrets/app/db"); valueOf(t, body) != "pw-first-7f3a" || h.Get("X-Coffer-Cache") != "hit" {
		t.Fatalf("read before rotation = %s (%s), want the first value from the cache", body, h.Get("X-Coffer-Cache"))
	}
	// The cache TTL is a minute: only the event stream can bring pw2 in time.
	cl.PutText(ctx, "app/db", "pw-second-9c1e")
	eventually(t, "the agent to serve the new value", 3*time.Second, func() bool {
		_, _, body := ta.get(t, ta.unix, "/v1/secrets/app/db")
		return valueOf(t, body) == "pw-second-9c1e"
	})
	want2 := "DB_PASSWORD=pw-second-9c1e\nDB_VERSION=2\nAPI_KEY=apikey-51b2\nPORT=54329\n"
	eventually(t, "the template to change and the command to run", 3*time.Second, func() bool {
		return read(dest) == want2 && read(marker) == "reloaded\nreloaded\n"
	})
	if fi, _ := os.Stat(dest); fi.Mode().Perm() != 0o600 {
		t.Fatalf("re-rendered file mode = %v", fi.Mode())
	}
	// The eager refetch after the event makes the next read a hit.
	eventually(t, "the eager refetch", 3*time.Second, func() bool {
		_, h, body := ta.get(t, ta.tcp, "/v1/secrets/app/db")
		return h.Get("X-Coffer-Cache") == "hit" && valueOf(t, body) == "pw-second-9c1e"
	})
	// Deleting drops the cached value: the agent answers 404 like the server.
	cl.Delete(ctx, "app/api", client.DeleteOptions{Force: true})
	eventually(t, "the deletion to reach the agent", 3*time.Second, func() bool {
		st, _, _ := ta.get(t, ta.tcp, "/v1/secrets/app/api")
		return st == 404
	})
	if got := ta.metric(t, `coffer_agent_template_renders_total{result="changed"}`); got != 2 {
		t.Fatalf("changed renders = %v, want 2", got)
	}
	// Values and tokens never reach the log.
	logged := ta.log.String()
	for _, v := range []string{"pw-first-7f3a", "pw-second-9c1e", "apikey-51b2", "54329"} {
		if strings.Contains(logged, v) {
			t.Fatalf("the agent logged the value %q:\n%s", v, logged)
		}
	}
	if tokenShape.MatchString(logged) {
		t.Fatalf("the agent logged a token:\n%s", logged)
	}
	// No temporary files are left beside the destination.
	if m, _ := filepath.Glob(filepath.Join(cr.dir, ".app.env.tmp-*")); len(m) != 0 {
		t.Fatalf("temporary files left: %v", m)
	}
}

// tokenShape matches Coffer tokens (see internal/logredact).
var tokenShape = regexp.MustCompile(`cof_[0-9A-Za-z]{40,60}`)

func TestAgentTokenMethod(t *testing.T) {
	t.Parallel()
	c, cr := startCoffer(t, "", "")
	ctx := context.Background()
	cl := c.client()
	cl.PutText(ctx, "app/db", "pw1")
	tok, err := cl.CreateToken(ctx, client.TokenCreateInput{Policies: []string{"app"}, TTL: "1h"})
	if err != nil {
		t.Fatal(err)
	}
	tokenFile := filepath.Join(cr.dir, "token")
	os.WriteFile(tokenFile, []byte(tok.Token+"\n"), 0o600)
	ta := startAgent(t, fmt.Sprintf(`
server = %q
auto_auth {
  method     = "token"
  token_file = %q
}
cache {
  listen_unix = %q
  listen_tcp  = "127.0.0.1:0"
}
metrics_listen = "127.0.0.1:0"
`, c.url(), tokenFile, filepath.Join(cr.dir, "agent.sock")))
	if st, h, body := ta.get(t, ta.unix, "/v1/secrets/app/db"); st != 200 || h.Get("X-Coffer-Cache") != "miss" || valueOf(t, body) != "pw1" {
		t.Fatalf("read = %d %q %s", st, h.Get("X-Coffer-Cache"), body)
	}
	if ta.auth.token() != tok.Token {
		t.Fatal("the agent does not use the token of token_file")
	}
}

func TestAgentServesStaleValuesWhileTheServerIsDown(t *testing.T) {
	t.Parallel()
	c, cr := startCoffer(t, "", "")
	ctx := context.Background()
	c.client().PutText(ctx, "app/db", "pw1")
	ta := startAgent(t, agentConfig(c.url(), cr, ""))
	if _, h, _ := ta.get(t, ta.unix, "/v1/secrets/app/db"); h.Get("X-Coffer-Cache") != "miss" {
		t.Fatalf("first read = %q", h.Get("X-Coffer-Cache"))
	}
	eventually(t, "the event stream", 5*time.Second, func() bool { return ta.follower.connected.Load() })

	addr := c.addr
	c.stop()
	eventually(t, "the agent to notice", 3*time.Second, func() bool { return !ta.follower.connected.Load() })
	status, h, body := ta.get(t, ta.unix, "/v1/secrets/app/db")
	if status != 200 || h.Get("X-Coffer-Cache") != "stale" || valueOf(t, body) != "pw1" {
		t.Fatalf("read while the server is down = %d %q %s, want the last good value, stale", status, h.Get("X-Coffer-Cache"), body)
	}
	if s, err := strconv.Atoi(h.Get("X-Coffer-Stale-Seconds")); err != nil || s < 0 {
		t.Fatalf("X-Coffer-Stale-Seconds = %q", h.Get("X-Coffer-Stale-Seconds"))
	}
	if st, _, _ := ta.get(t, ta.tcp, "/v1/secrets/app/never-read"); st != http.StatusBadGateway {
		t.Fatalf("uncached read while the server is down = %d, want 502", st)
	}
	if got := ta.metric(t, `coffer_agent_cache_requests_total{result="stale"}`); got != 1 {
		t.Fatalf("stale counter = %v", got)
	}
	if got := ta.metric(t, "coffer_agent_stale_seconds"); got <= 0 {
		t.Fatalf("coffer_agent_stale_seconds = %v, want > 0", got)
	}
	if got := ta.metric(t, "coffer_agent_event_stream_connected"); got != 0 {
		t.Fatalf("coffer_agent_event_stream_connected = %v", got)
	}

	// A new server on the same data and address: the agent reconnects,
	// resynchronises, and new versions flow again.
	c.start(addr)
	eventually(t, "the event stream to come back", 5*time.Second, func() bool { return ta.follower.connected.Load() })
	eventually(t, "a fresh read", 3*time.Second, func() bool {
		_, h, body := ta.get(t, ta.unix, "/v1/secrets/app/db")
		return h.Get("X-Coffer-Cache") != "stale" && valueOf(t, body) == "pw1"
	})
	if got := ta.metric(t, "coffer_agent_stale_seconds"); got != 0 {
		t.Fatalf("coffer_agent_stale_seconds after recovery = %v, want 0", got)
	}
	c.client().PutText(ctx, "app/db", "pw2")
	eventually(t, "the new version through the new server's events", 3*time.Second, func() bool {
		_, h, body := ta.get(t, ta.unix, "/v1/secrets/app/db")
		return h.Get("X-Coffer-Cache") != "stale" && valueOf(t, body) == "pw2"
	})
}

func TestAgentRenewsAndLogsInAgain(t *testing.T) {
	t.Parallel()
	c, cr := startCoffer(t, "2s", "4s")
	ctx := context.Background()
	cl := c.client()
	cl.PutText(ctx, "app/db", "pw1")
	sink := filepath.Join(cr.dir, "token")
	hcl := strings.Replace(agentConfig(c.url(), cr, ""), `secret_id_file =`, "sink_file = \""+sink+"\"\n  secret_id_file =", 1)
	ta := startAgent(t, hcl)
	first, err := os.ReadFile(sink)
	if err != nil {
		t.Fatal(err)
	}
	if fi, _ := os.Stat(sink); fi.Mode().Perm() != 0o600 {
		t.Fatalf("sink file mode = %v", fi.Mode())
	}
	// Renewals at 2/3 of the 2s TTL, then a new login before the 4s maximum.
	eventually(t, "a renewal and a second login", 6*time.Second, func() bool {
		return ta.metric(t, `coffer_agent_auth_renewals_total{result="success"}`) >= 1 &&
			ta.metric(t, `coffer_agent_auth_logins_total{result="success"}`) >= 2
	})
	second, _ := os.ReadFile(sink)
	if string(first) == string(second) {
		t.Fatal("the sink still holds the first token after a new login")
	}
	if st, _, body := ta.get(t, ta.tcp, "/v1/secrets/app/db?version=1"); st != 200 || valueOf(t, body) != "pw1" {
		t.Fatalf("read with the new token = %d %s", st, body)
	}

	// A revoked token: the server answers 401, the agent logs in again and
	// the read succeeds.
	logins := ta.metric(t, `coffer_agent_auth_logins_total{result="success"}`)
	if err := cl.WithToken(ta.auth.token()).RevokeSelf(ctx); err != nil {
		t.Fatal(err)
	}
	if st, _, body := ta.get(t, ta.tcp, "/v1/secrets/app/db?stage=current"); st != 200 || valueOf(t, body) != "pw1" {
		t.Fatalf("read after the token was revoked = %d %s", st, body)
	}
	if got := ta.metric(t, `coffer_agent_auth_logins_total{result="success"}`); got <= logins {
		t.Fatalf("logins = %v, want more than %v", got, logins)
	}
}
