package sqlquote

import (
	"errors"
	"strings"
	"testing"
)

func TestScramVerifierShape(t *testing.T) {
	v := scramVerifier("pencil")
	parts := strings.Split(v, "$")
	if len(parts) != 3 || parts[0] != "SCRAM-SHA-256" || !strings.HasPrefix(parts[1], "4096:") {
		t.Fatalf("verifier %q", v)
	}
	if _, err := PostgresPassword("caf\u00e9"); err == nil {
		t.Fatal("non-ASCII password accepted")
	}
}

func TestLiteral(t *testing.T) {
	for in, want := range map[string]string{"abc": "'abc'", "it's": "'it''s'", "": "''"} {
		if got, err := Literal(in); err != nil || got != want {
			t.Errorf("Literal(%q) = %q, %v, want %q", in, got, err, want)
		}
	}
	for _, bad := range []string{"a\\' OR 1=1 --", "nul\x00"} {
		if _, err := Literal(bad); !errors.Is(err, ErrUnquotable) {
			t.Errorf("Literal(%q) = %v, want ErrUnquotable", bad, err)
		}
	}
}
