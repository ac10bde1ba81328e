package e2e

import (
	"context"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/coffer-dev/coffer/client"
)

// credentialTarget is an external system rotated through the webhook
// rotator: set adds a credential, revoke removes one, test checks one.
type credentialTarget struct {
	mu    sync.Mutex
	valid map[string]bool
	byVer map[string]string // name@version -> value
}

func (tg *credentialTarget) works(v string) bool {
	tg.mu.Lock()
	defer tg.mu.Unlock()
	return tg.valid[v]
}

func (tg *credentialTarget) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	var q struct {
		Step     string  `json:"step"`
		Name     string  `json:"secret_name"`
		Version  int     `json:"version"`
		Previous int     `json:"previous_version"`
		Value    *string `json:"value"`
	}
	body, _ := io.ReadAll(r.Body)
	if r.Header.Get("Coffer-Signature") == "" || json.Unmarshal(body, &q) != nil {
		http.Error(w, "unsigned or malformed", http.StatusBadRequest)
		return
	}
	tg.mu.Lock()
	defer tg.mu.Unlock()
	switch q.Step {
	case "set":
		tg.valid[*q.Value] = true
		tg.byVer[fmt.Sprintf("%s@%d", q.Name, q.Version)] = *q.Value
	case "test":
		if !tg.valid[*q.Value] {
			http.Error(w, "refused", http.StatusForbidden)
		}
	case "revoke":
		delete(tg.valid, tg.byVer[fmt.Sprintf("%s@%d", q.Name, q.Previous)])
	}
}

// TestRotationCrashBetweenSteps kills the server (SIGKILL, through a
// test-only failpoint) right after each step of a rotation is durable, then
// restarts it: the rotation must finish or roll back by itself, no pending
// version may be left, and the current value must work on the target at
// every moment it is checked.
func TestRotationCrashBetweenSteps(t *testing.T) {
	tg := &credentialTarget{valid: map[string]bool{}, byVer: map[string]string{}}
	srv := httptest.NewTLSServer(tg)
	defer srv.Close()
	dir := t.TempDir()
	ca := filepath.Join(dir, "target-ca.pem")
	if err := os.WriteFile(ca, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: srv.Certificate().Raw}), 0o600); err != nil {
		t.Fatal(err)
	}
	t.Setenv("COFFER_TEST_ROTATION_LEASE", "1500ms")
	t.Setenv("COFFER_TEST_ROTATION_TICK", "300ms")

	// The target listens on loopback, which webhooks may reach only when allowed.
	n := newNode(t, dir, fmt.Sprintf(`seal "keyfile" { path = %q }
rotation { webhook_allowed_hosts = ["127.0.0.1"] }`, filepath.Join(dir, "unseal.key")), "")
	n.start()
	out := n.ok("", "operator", "init")
	tok := strings.TrimSpace(strings.SplitN(strings.SplitN(out, "Root token: ", 2)[1], "\n", 2)[0])
	n.setToken(tok)
	c, err := client.New(client.Config{Address: n.url, Token: tok, Timeout: 5 * time.Second, MaxRetries: -1})
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()

	currentWorks := func(name string) {
		t.Helper()
		s, err := c.Get(ctx, name, client.Current())
		if err != nil {
			t.Fatalf("read %s: %v", name, err)
		}
		if !tg.works(s.Text()) {
			t.Fatalf("%s: current version %d does not work on the target", name, s.Version)
		}
	}

	for _, step := range []string{"create", "set", "test", "finish", "promote"} {
		name := "ext/" + step
		initial := "initial-" + step
		tg.mu.Lock()
		tg.valid[initial], tg.byVer[name+"@1"] = true, initial
		tg.mu.Unlock()
		n.ok("", "secret", "put", name, initial)
		n.ok("", "rotation", "set", name, "--rotator", "webhook", "--every", "30d", "--grace", "1h",
			"--option", "url="+srv.URL+"/rotate", "--option", "ca_cert=@"+ca)

		// Crash right after the step.
		n.stop()
		t.Setenv("COFFER_TEST_ROTATION_CRASH_AFTER", step)
		n.start()
		_, errOut, code := n.run("", "secret", "rotate", name)
		if code == 0 {
			t.Fatalf("%s: the rotation finished although the server was to die after %s", name, step)
		}
		n.cmd.Wait() // the server killed itself
		n.cmd = nil
		t.Logf("crash after %s: CLI said %q", step, strings.TrimSpace(errOut))

		// Restart without the failpoint; the scheduler resumes the rotation.
		os.Unsetenv("COFFER_TEST_ROTATION_CRASH_AFTER")
		n.start()
		deadline := time.Now().Add(20 * time.Second)
		for {
			currentWorks(name)
			st, err := c.Rotation(ctx, name)
			if err != nil {
				t.Fatal(err)
			}
			if st.State.Status == "scheduled" && st.State.Step == "" {
				if st.State.Rotations != 1 || st.State.LastError != "" {
					t.Fatalf("%s after recovery: %+v", name, st.State)
				}
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("%s: rotation not resolved after restart: %+v", name, st.State)
			}
			time.Sleep(100 * time.Millisecond)
		}
		m, err := c.Describe(ctx, name)
		if err != nil {
			t.Fatal(err)
		}
		if m.Stages["pending"] != 0 || m.Stages["current"] != 2 || len(m.Versions) != 2 {
			t.Fatalf("%s after recovery: stages %v, %d versions; want v2 current, no pending, no extra version", name, m.Stages, len(m.Versions))
		}
		if !tg.works(initial) {
			t.Fatalf("%s: the previous value was revoked inside its grace window", name)
		}
	}

	// The CLI shows the rotation in describe, and random works.
	desc := n.ok("", "secret", "describe", "ext/set")
	for _, want := range []string{"Rotation", "Rotator:        webhook", "Status:         scheduled", "Last rotated:", "Grace ends:"} {
		if !strings.Contains(desc, want) {
			t.Fatalf("describe lacks %q:\n%s", want, desc)
		}
	}
	if strings.Contains(desc, "signing_key\":\"") && !strings.Contains(desc, "hidden") {
		t.Fatalf("describe shows the signing key:\n%s", desc)
	}
	pw := strings.TrimSpace(n.ok("", "random", "--length", "24", "--no-punctuation"))
	if len(pw) != 24 || strings.ContainsAny(pw, "!#$%&()*+,-./:;<=>?@[]^_{|}~") {
		t.Fatalf("coffer random = %q", pw)
	}
	// Emergency rotation reports every secret under the prefix.
	rep := n.ok("", "rotate", "emergency", "--prefix", "ext/")
	if !strings.Contains(rep, "5 rotated, 0 failed") {
		t.Fatalf("emergency report:\n%s", rep)
	}
	for _, step := range []string{"create", "set", "test", "finish", "promote"} {
		currentWorks("ext/" + step)
		if tg.works("initial-" + step) {
			t.Fatalf("emergency rotation left the old value of ext/%s working", step)
		}
	}
}
