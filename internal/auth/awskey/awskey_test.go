package awskey

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/coffer-dev/coffer/internal/auth"
	"github.com/coffer-dev/coffer/internal/storage/mem"
)

type clock struct{ t time.Time }

func (c *clock) now() time.Time { return c.t }

func newService(t testing.TB) (*Service, *clock) {
	t.Helper()
	c := &clock{t: time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)}
	b := mem.New()
	t.Cleanup(func() { b.Close() })
	return New(b, c.now), c
}

func TestCreateFormats(t *testing.T) {
	s, _ := newService(t)
	ctx := context.Background()
	seen := map[string]bool{}
	for range 50 {
		id, secret, k, err := s.Create(ctx, Input{Name: "payments", Policies: []string{"payments-read"}})
		if err != nil {
			t.Fatal(err)
		}
		if !ValidID(id) || len(id) != 20 || !strings.HasPrefix(id, "CFRK") || strings.ToUpper(id) != id {
			t.Fatalf("access key id %q does not look like CFRK + 16 base32 characters", id)
		}
		if len(secret) != 40 {
			t.Fatalf("secret is %d characters, want 40", len(secret))
		}
		if _, err := base64.StdEncoding.DecodeString(secret); err != nil {
			t.Fatalf("secret is not base64: %v", err)
		}
		if seen[id] || seen[secret] {
			t.Fatal("repeated id or secret")
		}
		seen[id], seen[secret] = true, true
		if k.AccessKeyID != id || k.Name != "payments" || k.ExpiresAt != nil {
			t.Fatalf("key = %+v", k)
		}
	}
}

func TestCredentialsAndPrincipal(t *testing.T) {
	s, c := newService(t)
	ctx := context.Background()
	id, secret, _, err := s.Create(ctx, Input{Name: "ci", Policies: []string{"a", "b"}, TTL: time.Hour, CreatedBy: "root"})
	if err != nil {
		t.Fatal(err)
	}
	k, got, err := s.Credentials(ctx, id)
	if err != nil {
		t.Fatal(err)
	}
	if got != secret {
		t.Fatal("Credentials returned another secret")
	}
	p := k.Principal()
	if p.Name != "aws/ci" || p.Method != "awskey" || p.IdentityID != "awskey:ci" || p.Accessor != id ||
		strings.Join(p.Policies, ",") != "a,b" || p.Root() {
		t.Fatalf("principal = %+v", p)
	}
	if k.ExpiresAt == nil || !k.ExpiresAt.Equal(c.t.Add(time.Hour)) {
		t.Fatalf("expires_at = %v", k.ExpiresAt)
	}

	c.t = c.t.Add(time.Hour)
	if _, _, err := s.Credentials(ctx, id); !errors.Is(err, ErrExpired) {
		t.Fatalf("Credentials after expiry = %v, want ErrExpired", err)
	}
	if _, err := s.Get(ctx, id); err != nil {
		t.Fatalf("Get of an expired key = %v, want it still readable", err)
	}
	n, err := s.TidyExpired(ctx)
	if err != nil || n != 1 {
		t.Fatalf("TidyExpired = %d, %v; want 1", n, err)
	}
	if _, err := s.Get(ctx, id); !errors.Is(err, ErrNotFound) {
		t.Fatalf("Get after tidy = %v, want ErrNotFound", err)
	}
}

func TestUnknownAndMalformedIDs(t *testing.T) {
	s, _ := newService(t)
	ctx := context.Background()
	for _, id := range []string{"", "AKIDEXAMPLE", "CFRKAAAAAAAAAAAAAAAA", "CFRKaaaaaaaaaaaaaaaa", "CFRK/../../sys/seal", strings.Repeat("C", 5000)} {
		if _, _, err := s.Credentials(ctx, id); !errors.Is(err, ErrNotFound) {
			t.Errorf("Credentials(%q) = %v, want ErrNotFound", id, err)
		}
		if err := s.Delete(ctx, id); !errors.Is(err, ErrNotFound) {
			t.Errorf("Delete(%q) = %v, want ErrNotFound", id, err)
		}
	}
}

func TestListAndDelete(t *testing.T) {
	s, c := newService(t)
	ctx := context.Background()
	var ids []string
	for _, name := range []string{"zeta", "alpha", "alpha"} {
		c.t = c.t.Add(time.Second)
		id, _, _, err := s.Create(ctx, Input{Name: name})
		if err != nil {
			t.Fatal(err)
		}
		ids = append(ids, id)
	}
	keys, err := s.List(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if len(keys) != 3 || keys[0].AccessKeyID != ids[1] || keys[1].AccessKeyID != ids[2] || keys[2].AccessKeyID != ids[0] {
		t.Fatalf("List order = %v, want alpha (older first), alpha, zeta", keys)
	}
	if keys[0].Policies == nil {
		t.Fatal("Policies is nil; want an empty list in JSON")
	}
	if err := s.Delete(ctx, ids[1]); err != nil {
		t.Fatal(err)
	}
	if err := s.Delete(ctx, ids[1]); !errors.Is(err, ErrNotFound) {
		t.Fatalf("second Delete = %v, want ErrNotFound", err)
	}
	if _, _, err := s.Credentials(ctx, ids[1]); !errors.Is(err, ErrNotFound) {
		t.Fatalf("Credentials after Delete = %v, want ErrNotFound", err)
	}
	keys, _ = s.List(ctx)
	if len(keys) != 2 {
		t.Fatalf("List after Delete has %d keys, want 2", len(keys))
	}
}

func TestCreateValidation(t *testing.T) {
	s, _ := newService(t)
	tests := []struct {
		name  string
		in    Input
		field string
	}{
		{"empty name", Input{}, "name"},
		{"slash in name", Input{Name: "a/b"}, "name"},
		{"long name", Input{Name: strings.Repeat("a", 129)}, "name"},
		{"root policy", Input{Name: "a", Policies: []string{"root"}}, "policies"},
		{"empty policy", Input{Name: "a", Policies: []string{""}}, "policies"},
		{"negative ttl", Input{Name: "a", TTL: -time.Second}, "ttl"},
		{"huge ttl", Input{Name: "a", TTL: MaxTTL + time.Hour}, "ttl"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, _, _, err := s.Create(context.Background(), tt.in)
			var ie *auth.InputError
			if !errors.As(err, &ie) || ie.Field != tt.field {
				t.Fatalf("Create(%+v) = %v, want an input error on %s", tt.in, err, tt.field)
			}
		})
	}
}

func TestKeyNeverCarriesSecret(t *testing.T) {
	s, _ := newService(t)
	ctx := context.Background()
	_, secret, k, err := s.Create(ctx, Input{Name: "x"})
	if err != nil {
		t.Fatal(err)
	}
	keys, err := s.List(ctx)
	if err != nil {
		t.Fatal(err)
	}
	// Key is what the admin API returns: it must never carry the secret.
	for _, v := range []any{k, k.Principal(), keys} {
		raw, _ := json.Marshal(v)
		if strings.Contains(string(raw), secret) || strings.Contains(fmt.Sprintf("%+v", v), secret) {
			t.Fatalf("%T carries the secret", v)
		}
	}
}
