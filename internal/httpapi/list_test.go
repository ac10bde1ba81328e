package httpapi_test

import (
	"context"
	"fmt"
	"net/url"
	"strings"
	"testing"

	"github.com/coffer-dev/coffer/internal/auth/token"
)

// TestListHidesNamesInCursors: the names a token may not list never leave
// the server, not even as the cursor of the next page; pages skip them and
// still reach every name the token may list.
func TestListHidesNamesInCursors(t *testing.T) {
	h := newHarness(t)
	ctx := context.Background()
	var hidden, shown []string
	for i := 0; i < 30; i++ {
		hidden = append(hidden, fmt.Sprintf("hr/salary-%02d", i))
	}
	for i := 0; i < 5; i++ {
		shown = append(shown, fmt.Sprintf("app/key-%d", i), fmt.Sprintf("zz/key-%d", i))
	}
	for _, n := range append(append([]string{}, hidden...), shown...) {
		if _, err := h.c.PutText(ctx, n, "v"); err != nil {
			t.Fatal(err)
		}
	}
	if err := h.core.Policies.Put(ctx, "lister", `
path "app/*" { capabilities = ["list"] }
path "zz/*" { capabilities = ["list"] }
`, "test"); err != nil {
		t.Fatal(err)
	}
	weak, _, _ := h.core.Tokens.Create(ctx, token.CreateInput{DisplayName: "weak", Policies: []string{"default"}})
	lister, _, _ := h.core.Tokens.Create(ctx, token.CreateInput{DisplayName: "lister", Policies: []string{"lister"}})

	walk := func(tok string, limit int) (names []string, pages int) {
		t.Helper()
		cursor := ""
		for pages = 1; pages < 100; pages++ {
			status, body := h.raw(t, "GET", fmt.Sprintf("/v1/secrets?limit=%d&cursor=%s", limit, url.QueryEscape(cursor)), tok, "")
			if status != 200 {
				t.Fatalf("list page %d = %d %v", pages, status, body)
			}
			items, _ := body["items"].([]any)
			for _, it := range items {
				names = append(names, it.(map[string]any)["name"].(string))
			}
			c, _ := body["next_cursor"].(string)
			for _, n := range hidden {
				if strings.Contains(c, n) || strings.Contains(c, "hr/") {
					t.Fatalf("cursor %q names a hidden secret", c)
				}
			}
			if c == "" {
				return names, pages
			}
			cursor = c
		}
		t.Fatal("list never ended")
		return nil, 0
	}
	if names, _ := walk(weak, 1); len(names) != 0 {
		t.Errorf("a token that may list nothing saw %v", names)
	}
	names, pages := walk(lister, 3)
	if strings.Join(names, ",") != strings.Join([]string{"app/key-0", "app/key-1", "app/key-2", "app/key-3", "app/key-4", "zz/key-0", "zz/key-1", "zz/key-2", "zz/key-3", "zz/key-4"}, ",") {
		t.Errorf("lister saw %v", names)
	}
	if pages > 5 {
		t.Errorf("10 visible names in pages of 3 took %d pages: hidden names should not make pages short", pages)
	}
	// A cursor belongs to its list: another prefix, or a made-up one, is refused.
	_, body := h.raw(t, "GET", "/v1/secrets?limit=3", lister, "")
	c, _ := body["next_cursor"].(string)
	for _, q := range []string{"prefix=zz/&cursor=" + url.QueryEscape(c), "cursor=hr/salary-00", "cursor=" + url.QueryEscape(c) + "x"} {
		if status, body := h.raw(t, "GET", "/v1/secrets?"+q, lister, ""); status != 400 {
			t.Errorf("GET /v1/secrets?%s = %d %v, want 400", q, status, body)
		}
	}
}
