package token

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/coffer-dev/coffer/internal/auth"
	"github.com/coffer-dev/coffer/internal/storage/mem"
)

func TestFormat(t *testing.T) {
	tok, err := Generate()
	if err != nil {
		t.Fatal(err)
	}
	if len(tok) != Len || !strings.HasPrefix(tok, Prefix) {
		t.Fatalf("Generate() = %q", tok)
	}
	if err := Check(tok); err != nil {
		t.Fatalf("Check(generated) = %v", err)
	}
	flipped := []byte(tok)
	if flipped[10] == 'a' {
		flipped[10] = 'b'
	} else {
		flipped[10] = 'a'
	}
	for _, bad := range []string{"", "cof_", tok[:Len-1], "xof_" + tok[4:], string(flipped), tok[:Len-1] + "!"} {
		if Check(bad) == nil {
			t.Errorf("Check(%q) = nil, want ErrMalformed", bad)
		}
	}
}

func FuzzCheck(f *testing.F) {
	tok, _ := Generate()
	f.Add(tok)
	f.Add("cof_")
	f.Add(strings.Repeat("0", Len))
	f.Fuzz(func(t *testing.T, s string) { Check(s) })
}

func TestCreateLookupRevoke(t *testing.T) {
	ctx := context.Background()
	now := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	s := New(mem.New(), func() time.Time { return now })
	if err := s.Load(ctx); err != nil {
		t.Fatal(err)
	}
	tok, e, err := s.Create(ctx, CreateInput{DisplayName: "root", Policies: []string{"root"}})
	if err != nil {
		t.Fatal(err)
	}
	got, err := s.Lookup(ctx, tok)
	if err != nil || got.Accessor != e.Accessor || !got.Principal().Root() {
		t.Fatalf("Lookup = %+v, %v", got, err)
	}
	if _, err := s.Lookup(ctx, tok[:Len-1]+"x"); !errors.Is(err, auth.ErrUnauthenticated) {
		t.Fatalf("Lookup(bad) = %v", err)
	}
	other, _ := Generate()
	if _, err := s.Lookup(ctx, other); !errors.Is(err, auth.ErrUnauthenticated) {
		t.Fatalf("Lookup(unknown) = %v", err)
	}
	byAcc, err := s.LookupAccessor(ctx, e.Accessor)
	if err != nil || byAcc.DisplayName != "root" {
		t.Fatalf("LookupAccessor = %+v, %v", byAcc, err)
	}
	if err := s.Revoke(ctx, byAcc); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Lookup(ctx, tok); !errors.Is(err, auth.ErrUnauthenticated) {
		t.Fatalf("Lookup after revoke = %v", err)
	}

	short, _, _ := s.Create(ctx, CreateInput{DisplayName: "short", TTL: time.Minute})
	if _, err := s.Lookup(ctx, short); err != nil {
		t.Fatal(err)
	}
	now = now.Add(time.Minute)
	if _, err := s.Lookup(ctx, short); !errors.Is(err, auth.ErrUnauthenticated) {
		t.Fatalf("Lookup expired = %v", err)
	}
}

func BenchmarkLookup(b *testing.B) {
	ctx := context.Background()
	s := New(mem.New(), nil)
	s.Load(ctx)
	tok, _, _ := s.Create(ctx, CreateInput{DisplayName: "x"})
	b.ReportAllocs()
	for b.Loop() {
		if _, err := s.Lookup(ctx, tok); err != nil {
			b.Fatal(err)
		}
	}
}
