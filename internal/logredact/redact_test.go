package logredact

import (
	"bytes"
	"errors"
	"log/slog"
	"strings"
	"testing"
)

const (
	tok = "cof_2vGID8BjGYE94AaS6wOhMgHxfdjgtWRqDPn7U7VpXUM2PUL5K"
	sid = "cofsid_0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef01234567"
	jwt = "eyJhbGciOiJFUzI1NiJ9.eyJzdWIiOiJyZXBvOmFjbWUvc2hvcCJ9.c2lnbmF0dXJlLWJ5dGVz"
)

func TestScrub(t *testing.T) {
	tests := []struct {
		name, in, want string
	}{
		{"token", "token " + tok + " used", "token [REDACTED] used"},
		{"secret id", "sid=" + sid, "sid=[REDACTED]"},
		{"jwt", "jwt " + jwt, "jwt [REDACTED]"},
		{"bearer", "Authorization: Bearer abcdefghijklmnopqrstuvwxyz", "Authorization: [REDACTED]"},
		{"accessor kept", "accessor acc_CYV8lPAbongFwX7Sk5wCQPHq", "accessor acc_CYV8lPAbongFwX7Sk5wCQPHq"},
		{"plain", "nothing secret here", "nothing secret here"},
		{"basic", "Authorization: Basic YWxpY2U6aHVudGVyMg==", "Authorization: [REDACTED]"},
		{"url password", "dial postgres://app:hunter2@db.internal:5432/x failed", "dial postgres://app:[REDACTED]@db.internal:5432/x failed"},
		{"url without password kept", "dial postgres://app@db.internal:5432/x", "dial postgres://app@db.internal:5432/x"},
		{"dsn password", "host=db user=app password=hunter2 sslmode=require", "host=db user=app password=[REDACTED] sslmode=require"},
		{"dsn pwd", "Server=db;Uid=app;Pwd=hunter2;", "Server=db;Uid=app;Pwd=[REDACTED];"},
		{"plain url kept", "see https://example.com/docs/a:b for more", "see https://example.com/docs/a:b for more"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := Scrub(tt.in); got != tt.want {
				t.Fatalf("Scrub(%q) = %q, want %q", tt.in, got, tt.want)
			}
		})
	}
}

func TestHandlerScrubsEverywhere(t *testing.T) {
	var buf bytes.Buffer
	log := slog.New(New(slog.NewJSONHandler(&buf, &slog.HandlerOptions{Level: slog.LevelDebug})))
	log = log.With("preset", tok)
	log.Info("login with "+tok, "err", errors.New("bad token "+tok), "list", []string{sid},
		slog.Group("g", "jwt", jwt), "any", struct{ T string }{tok}, "bytes", []byte("raw "+tok))
	out := buf.String()
	for _, secret := range []string{tok, sid, jwt} {
		if strings.Contains(out, secret) {
			t.Fatalf("log holds a credential:\n%s", out)
		}
	}
	if strings.Count(out, Replacement) < 7 {
		t.Fatalf("expected seven redactions:\n%s", out)
	}
}

func FuzzScrub(f *testing.F) {
	f.Add(tok)
	f.Add("Bearer " + strings.Repeat("a", 40))
	f.Fuzz(func(t *testing.T, s string) {
		out := Scrub(s)
		if strings.Contains(out, tok) {
			t.Fatal("token survived")
		}
	})
}

// TestRedactionsCounted: every credential caught is counted (M6), and
// clean text is not.
func TestRedactionsCounted(t *testing.T) {
	before := Redactions()
	Scrub("nothing to see here, just a long enough line")
	if Redactions() != before {
		t.Fatal("clean text counted as a redaction")
	}
	Scrub("two tokens: " + tok + " and " + tok)
	if got := Redactions() - before; got != 2 {
		t.Fatalf("redactions counted = %d, want 2", got)
	}
}
