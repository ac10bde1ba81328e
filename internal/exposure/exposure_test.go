package exposure

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/coffer-dev/coffer/internal/auth"
	"github.com/coffer-dev/coffer/internal/storage/mem"
)

func TestAddListAndBounds(t *testing.T) {
	ctx := context.Background()
	now := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	s := New(mem.New(), func() time.Time { now = now.Add(time.Second); return now })

	r, err := s.Add(ctx, Report{Secret: "a", Source: "scanner", Location: "https://git.example/commit/1", ReportedBy: "alice"})
	if err != nil {
		t.Fatal(err)
	}
	if r.ID == "" || r.ReportedAt.IsZero() {
		t.Fatalf("report not filled in: %+v", r)
	}
	if _, err := s.Add(ctx, Report{Secret: "a/b", ReportedBy: "bob"}); err != nil {
		t.Fatal(err)
	}
	got, err := s.List(ctx, "a")
	if err != nil || len(got) != 1 || got[0].Location != "https://git.example/commit/1" {
		t.Fatalf("reports of a: %+v %v (a/b's must not show)", got, err)
	}
	all, next, _ := s.ListAll(ctx, "", "", 0)
	if next != "" {
		t.Fatalf("one page, yet next = %q", next)
	}
	if len(all) != 2 || all[0].Secret != "a/b" || all[0].Source != "other" {
		t.Fatalf("all: %+v", all)
	}

	for _, bad := range []Report{
		{Secret: "a", Source: "twitter"},
		{Secret: "a", Location: strings.Repeat("x", MaxLocation+1)},
		{Secret: "a", Note: "two\nlines"},
		{Secret: "a", Version: -1},
	} {
		_, err := s.Add(ctx, bad)
		var ie *auth.InputError
		if !errors.As(err, &ie) {
			t.Errorf("%+v: want an input error, got %v", bad, err)
		}
	}

	for i := 0; i < MaxPerSecret+5; i++ {
		if _, err := s.Add(ctx, Report{Secret: "many", Note: "n"}); err != nil {
			t.Fatal(err)
		}
	}
	page1, next, _ := s.ListAll(ctx, "many", "", 60)
	page2, last, _ := s.ListAll(ctx, "many", next, 60)
	if len(page1) != 60 || len(page2) != MaxPerSecret-60 || last != "" || page1[59].ID == page2[0].ID {
		t.Fatalf("pages of %d and %d, next %q then %q", len(page1), len(page2), next, last)
	}
	many, _ := s.List(ctx, "many")
	if len(many) != MaxPerSecret {
		t.Fatalf("kept %d reports, want %d", len(many), MaxPerSecret)
	}
	if !many[0].ReportedAt.Before(many[len(many)-1].ReportedAt) {
		t.Fatal("reports not in time order")
	}
}
