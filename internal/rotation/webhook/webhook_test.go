package webhook

import (
	"context"
	"encoding/hex"
	"encoding/json"
	"encoding/pem"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/coffer-dev/coffer/internal/rotation"
	"github.com/coffer-dev/coffer/internal/secret"
	"github.com/coffer-dev/coffer/internal/storage/mem"
)

// endpoint is an external system's rotation endpoint: it checks every
// signature and keeps which credentials work.
type endpoint struct {
	t   *testing.T
	srv *httptest.Server

	mu       sync.Mutex
	key      []byte
	steps    []string
	valid    map[string]bool
	byVer    map[int]string
	failSet  int
	slow     time.Duration
	create   string // body to answer create with
	badSigs  int
	sawIDs   map[string]bool
	lastBody map[string]any
}

func newEndpoint(t *testing.T) *endpoint {
	e := &endpoint{t: t, valid: map[string]bool{"initial": true}, byVer: map[int]string{1: "initial"}, sawIDs: map[string]bool{}}
	e.srv = httptest.NewTLSServer(http.HandlerFunc(e.serve))
	t.Cleanup(e.srv.Close)
	return e
}

func (e *endpoint) caPEM() string {
	return string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: e.srv.Certificate().Raw}))
}

func (e *endpoint) serve(w http.ResponseWriter, r *http.Request) {
	body, _ := io.ReadAll(r.Body)
	e.mu.Lock()
	defer e.mu.Unlock()
	if err := Verify(e.key, r.Header, body, time.Now(), 5*time.Minute); err != nil {
		e.badSigs++
		http.Error(w, "signature: "+err.Error(), http.StatusUnauthorized)
		return
	}
	var q map[string]any
	json.Unmarshal(body, &q)
	e.lastBody = q
	step, _ := q["step"].(string)
	e.steps = append(e.steps, step)
	if id, _ := q["rotation_id"].(string); id != "" {
		e.sawIDs[id] = true
	}
	value, _ := q["value"].(string)
	vf, _ := q["version"].(float64)
	version := int(vf)
	if e.slow > 0 {
		e.mu.Unlock()
		time.Sleep(e.slow)
		e.mu.Lock()
	}
	switch step {
	case StepCreate:
		io.WriteString(w, e.create)
	case StepSet:
		if e.failSet > 0 {
			e.failSet--
			http.Error(w, "downstream unavailable\nsecond line", http.StatusBadGateway)
			return
		}
		e.valid[value] = true
		e.byVer[version] = value
	case StepTest:
		if !e.valid[value] {
			http.Error(w, "credential refused", http.StatusForbidden)
		}
	case StepFinish:
	case StepRevoke:
		prev := int(q["previous_version"].(float64))
		delete(e.valid, e.byVer[prev])
	default:
		http.Error(w, "unknown step", http.StatusBadRequest)
	}
}

type clock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *clock) Now() time.Time { c.mu.Lock(); defer c.mu.Unlock(); return c.t }
func (c *clock) Advance(d time.Duration) {
	c.mu.Lock()
	c.t = c.t.Add(d)
	c.mu.Unlock()
}

type fixture struct {
	ep      *endpoint
	clock   *clock
	secrets *secret.Service
	engine  *rotation.Engine
}

func newFixture(t *testing.T, opts map[string]any, grace time.Duration) *fixture {
	f := &fixture{ep: newEndpoint(t), clock: &clock{t: time.Now().UTC()}}
	store := mem.New()
	f.secrets = secret.New(store, f.clock.Now)
	f.engine = rotation.New(rotation.Config{Store: store, Secrets: f.secrets, Now: f.clock.Now,
		Jitter: func(time.Duration) time.Duration { return 0 }, Rotators: map[string]rotation.Rotator{"webhook": New(Config{AllowedHosts: []string{"127.0.0.1"}})}})
	if _, err := f.secrets.Put(context.Background(), secret.PutInput{Name: "ext/api", Value: []byte("initial")}); err != nil {
		t.Fatal(err)
	}
	o := map[string]any{"url": f.ep.srv.URL + "/rotate", "ca_cert": f.ep.caPEM()}
	for k, v := range opts {
		o[k] = v
	}
	raw, _ := json.Marshal(o)
	p, err := f.engine.SetPolicy(context.Background(), "ext/api", rotation.Policy{Schedule: "every 30d", Grace: rotation.Duration(grace), Rotator: "webhook", Options: raw}, "t")
	if err != nil {
		t.Fatal(err)
	}
	var stored Options
	json.Unmarshal(p.Options, &stored)
	key, err := hex.DecodeString(stored.SigningKey)
	if err != nil || len(key) != 32 {
		t.Fatalf("signing key %q, want 32 random bytes shown once", stored.SigningKey)
	}
	f.ep.key = key
	return f
}

func (f *fixture) current(t *testing.T) *secret.Value {
	v, err := f.secrets.Get(context.Background(), "ext/api", secret.Selector{})
	if err != nil {
		t.Fatal(err)
	}
	return v
}

func TestWebhookFourSteps(t *testing.T) {
	f := newFixture(t, map[string]any{"password": map[string]any{"length": 20}}, time.Hour)
	st, err := f.engine.Rotate(context.Background(), "ext/api", rotation.RotateOptions{})
	if err != nil || st.Status != rotation.StatusScheduled || st.LastError != "" {
		t.Fatalf("Rotate = %+v, %v", st, err)
	}
	if got := strings.Join(f.ep.steps, ","); got != "create,set,test,finish" {
		t.Fatalf("steps = %s, want create,set,test,finish", got)
	}
	cur := f.current(t)
	if cur.Version != 2 || len(cur.Data) != 20 || !f.ep.valid[string(cur.Data)] || !f.ep.valid["initial"] {
		t.Fatalf("after rotation: v%d, endpoint valid %v", cur.Version, f.ep.valid)
	}
	if len(f.ep.sawIDs) != 1 {
		t.Fatalf("rotation ids seen: %v, want one for every step", f.ep.sawIDs)
	}
	f.clock.Advance(time.Hour)
	if _, err := f.engine.RunDue(context.Background()); err != nil {
		t.Fatal(err)
	}
	if f.ep.steps[len(f.ep.steps)-1] != StepRevoke || f.ep.valid["initial"] {
		t.Fatalf("after the grace window: steps %v, valid %v", f.ep.steps, f.ep.valid)
	}
	if _, ok := f.ep.lastBody["value"]; ok {
		t.Fatal("revoke carried a value")
	}
	// GET shows the key redacted.
	s, err := f.engine.Status(context.Background(), "ext/api")
	if err != nil || strings.Contains(string(s.Policy.Options), hex.EncodeToString(f.ep.key)) || !strings.Contains(string(s.Policy.Options), "hidden") {
		t.Fatalf("status options = %s, %v", s.Policy.Options, err)
	}
	if f.ep.badSigs != 0 {
		t.Fatalf("%d requests with bad signatures", f.ep.badSigs)
	}
}

func TestWebhookCreateSuppliesValue(t *testing.T) {
	f := newFixture(t, nil, 0)
	f.ep.create = `{"value_json":{"key_id":"k2","secret":"from-endpoint"}}`
	if st, err := f.engine.Rotate(context.Background(), "ext/api", rotation.RotateOptions{}); err != nil || st.LastError != "" {
		t.Fatalf("Rotate = %+v, %v", st, err)
	}
	if cur := f.current(t); cur.Type != secret.TypeJSON || string(cur.Data) != `{"key_id":"k2","secret":"from-endpoint"}` {
		t.Fatalf("current = %s %s", cur.Type, cur.Data)
	}
}

func TestWebhookFailureRetriesWithSameID(t *testing.T) {
	f := newFixture(t, nil, 0)
	f.ep.failSet = 1
	st, err := f.engine.Rotate(context.Background(), "ext/api", rotation.RotateOptions{})
	if err != nil || st.Status != rotation.StatusRetrying || !strings.Contains(st.LastError, "answered 502 (Bad Gateway)") || strings.Contains(st.LastError, "downstream") {
		t.Fatalf("after a 502: %+v, %v", st, err)
	}
	if v := f.current(t); v.Version != 1 {
		t.Fatalf("current moved to v%d on failure", v.Version)
	}
	f.clock.Advance(time.Hour)
	if _, err := f.engine.RunDue(context.Background()); err != nil {
		t.Fatal(err)
	}
	if v := f.current(t); v.Version != 2 || len(f.ep.sawIDs) != 1 {
		t.Fatalf("after the retry: v%d, ids %v", v.Version, f.ep.sawIDs)
	}
}

func TestWebhookTimeout(t *testing.T) {
	f := newFixture(t, map[string]any{"timeout": "200ms"}, 0)
	f.ep.slow = time.Second
	start := time.Now()
	st, err := f.engine.Rotate(context.Background(), "ext/api", rotation.RotateOptions{})
	if err != nil || st.Status != rotation.StatusRetrying || !strings.Contains(st.LastError, "timed out after 200ms") {
		t.Fatalf("slow endpoint: %+v, %v", st, err)
	}
	if d := time.Since(start); d > 900*time.Millisecond {
		t.Fatalf("the call took %v despite a 200ms timeout", d)
	}
}

func TestWebhookWrongKeyRefused(t *testing.T) {
	f := newFixture(t, nil, 0)
	f.ep.key = []byte("not-the-key")
	st, err := f.engine.Rotate(context.Background(), "ext/api", rotation.RotateOptions{})
	if err != nil || st.Status != rotation.StatusRetrying || !strings.Contains(st.LastError, "answered 401") || f.ep.badSigs != 1 {
		t.Fatalf("with a wrong key: %+v, %v (bad signatures %d)", st, err, f.ep.badSigs)
	}
}

func TestWebhookCheck(t *testing.T) {
	r := New(Config{})
	tests := []struct {
		name, opts, field string
	}{
		{"no url", `{}`, "options.url"},
		{"plain http", `{"url":"http://rotator.example.com/x"}`, "options.url"},
		{"credentials in url", `{"url":"https://u:p@rotator.example.com/x"}`, "options.url"},
		{"ftp", `{"url":"ftp://rotator.example.com/x"}`, "options.url"},
		{"timeout", `{"url":"https://r.example.com","timeout":"1h"}`, "options.timeout"},
		{"timeout above the step timeout", `{"url":"https://r.example.com","timeout":"3m"}`, "options.timeout"},
		{"timeout not a duration", `{"url":"https://r.example.com","timeout":"soon"}`, "options.timeout"},
		{"loopback", `{"url":"https://127.0.0.1/x"}`, "options.url"},
		{"loopback http", `{"url":"http://127.0.0.1:9/x"}`, "options.url"},
		{"localhost", `{"url":"https://localhost./x"}`, "options.url"},
		{"ipv6 loopback", `{"url":"https://[::1]/x"}`, "options.url"},
		{"mapped loopback", `{"url":"https://[::ffff:127.0.0.1]/x"}`, "options.url"},
		{"private", `{"url":"https://10.0.0.5/x"}`, "options.url"},
		{"ula", `{"url":"https://[fd00::1]/x"}`, "options.url"},
		{"metadata service", `{"url":"https://169.254.169.254/latest"}`, "options.url"},
		{"unspecified", `{"url":"https://0.0.0.0/x"}`, "options.url"},
		{"reserved class e", `{"url":"https://240.0.0.1/x"}`, "options.url"},
		{"ipv4-compatible", `{"url":"https://[::10.0.0.1]/x"}`, "options.url"},
		{"ipv4-compatible public", `{"url":"https://[::8.8.8.8]/x"}`, "options.url"},
		{"local-use nat64", `{"url":"https://[64:ff9b:1::a00:1]/x"}`, "options.url"},
		{"bad ca", `{"url":"https://r.example.com","ca_cert":"nope"}`, "options.ca_cert"},
		{"short key", `{"url":"https://r.example.com","signing_key":"abcd"}`, "options.signing_key"},
		{"unknown", `{"url":"https://r.example.com","retries":3}`, "options"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := r.Check(json.RawMessage(tt.opts), nil, rotation.PolicyInfo{})
			var ve *secret.ValidationError
			if !errors.As(err, &ve) || ve.Field != tt.field {
				t.Fatalf("Check(%s) = %v, want an error on %s", tt.opts, err, tt.field)
			}
		})
	}
	if _, err := r.Check(json.RawMessage(`{"url":"https://r.example.com","timeout":"2m"}`), nil, rotation.PolicyInfo{}); err != nil {
		t.Fatalf("a 2m timeout: %v", err)
	}
	// Allowed hosts may be private.
	allowed := New(Config{AllowedHosts: []string{"hooks.internal.example", "10.0.0.5"}})
	for _, u := range []string{"https://10.0.0.5/x", "https://HOOKS.internal.example/x"} {
		if _, err := allowed.Check(json.RawMessage(`{"url":"`+u+`"}`), nil, rotation.PolicyInfo{}); err != nil {
			t.Fatalf("Check(%s) with the host allowed: %v", u, err)
		}
	}
	if _, err := allowed.Check(json.RawMessage(`{"url":"https://10.0.0.6/x"}`), nil, rotation.PolicyInfo{}); err == nil {
		t.Fatal("an address next to an allowed one was accepted")
	}
	// Loopback http is allowed when private addresses are, and an update
	// to the same scheme and host keeps the signing key.
	r = New(Config{AllowPrivate: true})
	first, err := r.Check(json.RawMessage(`{"url":"http://127.0.0.1:9/x"}`), nil, rotation.PolicyInfo{})
	if err != nil {
		t.Fatal(err)
	}
	second, err := r.Check(json.RawMessage(`{"url":"http://127.0.0.1:9/y?v=2"}`), first, rotation.PolicyInfo{})
	if err != nil {
		t.Fatal(err)
	}
	var a, b Options
	json.Unmarshal(first, &a)
	json.Unmarshal(second, &b)
	if a.SigningKey == "" || a.SigningKey != b.SigningKey {
		t.Fatalf("signing key not kept across updates: %q then %q", a.SigningKey, b.SigningKey)
	}
}

// TestWebhookKeyFollowsOrigin: the signing key an endpoint knows is never
// carried to another scheme, host or port, and whoever sets the policy
// again sees only a key that is new.
func TestWebhookKeyFollowsOrigin(t *testing.T) {
	r := New(Config{})
	first, err := r.Check(json.RawMessage(`{"url":"https://hooks.example.com/rotate"}`), nil, rotation.PolicyInfo{})
	if err != nil {
		t.Fatal(err)
	}
	var a Options
	json.Unmarshal(first, &a)
	if shown := string(r.RedactKept(first, nil)); !strings.Contains(shown, a.SigningKey) {
		t.Fatalf("a generated key is not shown when the policy is set: %s", shown)
	}
	key := func(raw json.RawMessage) string {
		var o Options
		json.Unmarshal(raw, &o)
		return o.SigningKey
	}
	for _, u := range []string{"https://HOOKS.example.com./other", "https://hooks.example.com:443/x"} {
		same, err := r.Check(json.RawMessage(`{"url":"`+u+`"}`), first, rotation.PolicyInfo{})
		if err != nil {
			t.Fatal(err)
		}
		if key(same) != a.SigningKey {
			t.Fatalf("%s: the key changed for the same origin", u)
		}
		if shown := string(r.RedactKept(same, first)); strings.Contains(shown, a.SigningKey) || !strings.Contains(shown, "hidden") {
			t.Fatalf("%s: setting the policy again echoes the kept key: %s", u, shown)
		}
	}
	for _, u := range []string{"https://attacker.example.net/rotate", "https://hooks.example.com:8443/rotate"} {
		moved, err := r.Check(json.RawMessage(`{"url":"`+u+`"}`), first, rotation.PolicyInfo{})
		if err != nil {
			t.Fatal(err)
		}
		if k := key(moved); k == "" || k == a.SigningKey {
			t.Fatalf("%s: the old signing key followed the URL to another origin", u)
		}
		if shown := string(r.RedactKept(moved, first)); !strings.Contains(shown, key(moved)) || strings.Contains(shown, a.SigningKey) {
			t.Fatalf("%s: the new key is not shown once: %s", u, shown)
		}
	}
	// A key given with the update is the caller's own: shown back.
	given := strings.Repeat("cd", 32)
	withKey, err := r.Check(json.RawMessage(`{"url":"https://hooks.example.com/rotate","signing_key":"`+given+`"}`), first, rotation.PolicyInfo{})
	if err != nil || key(withKey) != given {
		t.Fatalf("a given key: %v", err)
	}
	if shown := string(r.RedactKept(withKey, first)); !strings.Contains(shown, given) {
		t.Fatalf("a key given with the update is hidden: %s", shown)
	}
}

func TestForbiddenAddresses(t *testing.T) {
	for _, s := range []string{"240.0.0.1", "255.255.255.255", "::a00:1", "::808:808", "64:ff9b:1::a00:1", "64:ff9b::7f00:1", "::ffff:10.0.0.1", "100.64.0.1"} {
		if !forbidden(netip.MustParseAddr(s)) {
			t.Errorf("%s is not forbidden", s)
		}
	}
	for _, s := range []string{"8.8.8.8", "2606:4700::1111", "223.255.255.1"} {
		if forbidden(netip.MustParseAddr(s)) {
			t.Errorf("%s is forbidden", s)
		}
	}
}

func TestSignVerify(t *testing.T) {
	key := []byte("0123456789abcdef")
	body := []byte(`{"step":"set"}`)
	now := time.Unix(1_900_000_000, 0)
	h := http.Header{}
	h.Set(HeaderTimestamp, "1900000000")
	h.Set(HeaderSignature, Sign(key, "1900000000", body))
	if err := Verify(key, h, body, now, time.Minute); err != nil {
		t.Fatal(err)
	}
	if err := Verify(key, h, []byte(`{"step":"revoke"}`), now, time.Minute); err == nil {
		t.Fatal("a changed body verified")
	}
	if err := Verify(key, h, body, now.Add(2*time.Minute), time.Minute); err == nil {
		t.Fatal("a replayed old request verified")
	}
}

// TestWebhookRefusesPrivateAddressesWhenDialling: the address check runs
// on the resolved address, so a name that resolves to loopback (as after
// DNS rebinding) is refused even though the policy passed Check.
func TestWebhookRefusesPrivateAddressesWhenDialling(t *testing.T) {
	var hits int
	var mu sync.Mutex
	srv := httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		hits++
		mu.Unlock()
	}))
	t.Cleanup(srv.Close)
	ca := string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: srv.Certificate().Raw}))
	port := srv.URL[strings.LastIndex(srv.URL, ":")+1:]
	job := &rotation.Job{Name: "ext/api", RotationID: "r1", Current: &secret.Value{Version: 1, Type: secret.TypeText, Data: []byte("current-value")}}
	for _, host := range []string{"localhost", "127.0.0.1"} {
		o := Options{URL: "https://" + host + ":" + port + "/hook", CACert: ca, SigningKey: strings.Repeat("ab", 32)}
		job.Options, _ = json.Marshal(o)
		err := New(Config{}).Test(context.Background(), job, job.Current)
		if !errors.Is(err, ErrForbiddenAddress) {
			t.Fatalf("Test via %s = %v, want ErrForbiddenAddress", host, err)
		}
		if strings.Contains(err.Error(), "current-value") {
			t.Fatalf("error carries the value: %v", err)
		}
		// Allowed explicitly, the call connects (the test certificate
		// names 127.0.0.1 but not localhost, so only that one completes).
		err = New(Config{AllowedHosts: []string{host}}).Test(context.Background(), job, job.Current)
		if errors.Is(err, ErrForbiddenAddress) || (host == "127.0.0.1" && err != nil) {
			t.Fatalf("Test via allowed %s: %v", host, err)
		}
	}
	if hits != 1 {
		t.Fatalf("endpoint saw %d requests, want only the allowed one", hits)
	}
}

func TestRedactHidesQuery(t *testing.T) {
	r := New(Config{})
	raw := json.RawMessage(`{"url":"https://hooks.example.com/rotate?token=s3cr3t&x=1","signing_key":"` + strings.Repeat("ab", 32) + `"}`)
	out := string(r.Redact(raw))
	if strings.Contains(out, "s3cr3t") || strings.Contains(out, strings.Repeat("ab", 32)) || !strings.Contains(out, "token=redacted") {
		t.Fatalf("Redact = %s", out)
	}
}
