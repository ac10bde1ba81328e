package otp

import (
	"strings"
	"testing"
)

func TestRoundTrip(t *testing.T) {
	pad, err := New()
	if err != nil {
		t.Fatal(err)
	}
	secret := "cof_" + strings.Repeat("A1b2", 12)
	e, err := Encode(secret, pad)
	if err != nil {
		t.Fatal(err)
	}
	if strings.Contains(e, "cof_") || e == secret {
		t.Fatalf("encoded form shows the secret: %q", e)
	}
	got, err := Decode(e, pad)
	if err != nil || got != secret {
		t.Fatalf("Decode = %q, %v", got, err)
	}
	other, _ := New()
	if got, _ := Decode(e, other); got == secret {
		t.Fatal("another pad decoded the secret")
	}
	for _, bad := range []string{"", "short", pad + "x"} {
		if _, err := Decode(e, bad); err == nil {
			t.Errorf("Decode with pad %q succeeded", bad)
		}
	}
	if _, err := Encode(strings.Repeat("x", Size+1), pad); err == nil {
		t.Error("Encode accepted a secret longer than the pad")
	}
}
