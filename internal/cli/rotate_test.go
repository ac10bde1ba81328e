package cli

import (
	"context"
	"strings"
	"testing"
)

// TestRotationCommands drives coffer rotation and coffer secret rotate
// against an in-process server.
func TestRotationCommands(t *testing.T) {
	ctx := context.Background()
	newRunServer(t)
	run := func(wantCode int, args ...string) (string, string) {
		t.Helper()
		out, errOut, code := runMain(ctx, args...)
		if code != wantCode {
			t.Fatalf("coffer %s = %d, stdout %q, stderr %q", strings.Join(args, " "), code, out, errOut)
		}
		return out, errOut
	}

	// --option values may hold commas and JSON lists.
	out, _ := run(0, "rotation", "set", "prod/api-key", "--rotator", "password", "--every", "30d", "--grace", "2h", "--jitter", "1h",
		"--option", "exclude_characters=,;", "--option", "length=24")
	if !strings.Contains(out, "Grace window:   2h\n") || !strings.Contains(out, "Jitter:         1h\n") || !strings.Contains(out, `"exclude_characters":",;"`) {
		t.Fatalf("rotation set printed %q", out)
	}
	out, _ = run(0, "rotation", "set", "prod/api-key", "--rotator", "password", "--every", "30d", "--grace", "1d")
	if !strings.Contains(out, "Grace window:   1d\n") {
		t.Fatalf("rotation set printed %q", out)
	}

	// A bad option names the option, not Go types.
	_, errOut := run(1, "rotation", "set", "prod/api-key", "--rotator", "password", "--option", "length=abc")
	if !strings.Contains(errOut, "options.length") || !strings.Contains(errOut, "whole number") || strings.Contains(errOut, "Go struct") {
		t.Fatalf("length=abc: stderr %q", errOut)
	}
	// A cron field out of range is named.
	_, errOut = run(1, "rotation", "set", "prod/api-key", "--rotator", "password", "--cron", "61 * * * *")
	if !strings.Contains(errOut, "minute field") {
		t.Fatalf("--cron 61: stderr %q", errOut)
	}

	// A failed rotation explains itself on stderr, without a blank line first.
	run(0, "rotation", "set", "prod/list", "--rotator", "password", "--option", "field=key")
	out, errOut = run(1, "secret", "rotate", "prod/list")
	if out != "" || !strings.HasPrefix(errOut, "Rotation of prod/list did not complete: ") {
		t.Fatalf("failed rotation: stdout %q, stderr %q", out, errOut)
	}
	// Without a policy: one error line.
	out, errOut = run(1, "secret", "rotate", "prod/blob")
	if out != "" || !strings.HasPrefix(errOut, "Error: ") || strings.Count(errOut, "\n") != 1 {
		t.Fatalf("rotate without a policy: stdout %q, stderr %q", out, errOut)
	}
	out, _ = run(0, "secret", "rotate", "prod/api-key")
	if !strings.HasPrefix(out, "Rotated prod/api-key: version 2 is current\n") {
		t.Fatalf("secret rotate printed %q", out)
	}
	out, _ = run(0, "rotation", "show", "prod/api-key")
	if !strings.Contains(out, "Grace window:   1d\n") {
		t.Fatalf("rotation show printed %q", out)
	}
}

func TestRotationOptions(t *testing.T) {
	e := &env{}
	tests := []struct {
		kvs  []string
		want string
	}{
		{[]string{`users=["app_blue","app_green"]`, "strategy=alternating"}, `{"strategy":"alternating","users":["app_blue","app_green"]}`},
		{[]string{"exclude_characters=,;", "length=24"}, `{"exclude_characters":",;","length":24}`},
		{[]string{"password.length=12", "url=https://h.example/x?a=1,2"}, `{"password":{"length":12},"url":"https://h.example/x?a=1,2"}`},
	}
	for _, tt := range tests {
		got, err := e.rotationOptions("", tt.kvs)
		if err != nil || string(got) != tt.want {
			t.Errorf("rotationOptions(%q) = %s, %v; want %s", tt.kvs, got, err, tt.want)
		}
	}
}
