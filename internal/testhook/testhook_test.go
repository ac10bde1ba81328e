package testhook

import "testing"

// TestReleaseBuildIgnoresHooks: without the coffer_testhooks tag (every
// build but the end-to-end tests'), a set variable is ignored.
func TestReleaseBuildIgnoresHooks(t *testing.T) {
	t.Setenv("COFFER_TEST_ROTATION_CRASH_AFTER", "set")
	if got, want := Env("COFFER_TEST_ROTATION_CRASH_AFTER"), map[bool]string{true: "set", false: ""}[Enabled]; got != want {
		t.Fatalf("Env = %q with hooks enabled=%v, want %q", got, Enabled, want)
	}
}
