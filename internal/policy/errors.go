package policy

import (
	"errors"
	"strconv"
)

// ErrInvalidPolicy is wrapped by every error that Parse, Format and Compile
// return for a policy that is malformed or breaks a limit. Match it with
// errors.Is; use errors.As with *Error for the policy and line.
var ErrInvalidPolicy = errors.New("invalid policy")

// Error describes one problem in a policy. Policy texts hold no secret
// values, so Msg may quote the offending pattern, capability or attribute.
type Error struct {
	Policy string // policy name; "" when unknown, as in Format
	Line   int    // 1-based source line; 0 when the problem has no line
	Msg    string
}

// Error formats e like a compiler diagnostic: "payments.hcl:3: msg".
func (e *Error) Error() string {
	var s string
	switch {
	case e.Policy != "" && e.Line > 0:
		s = e.Policy + ".hcl:" + strconv.Itoa(e.Line) + ": "
	case e.Policy != "":
		s = e.Policy + ".hcl: "
	case e.Line > 0:
		s = "line " + strconv.Itoa(e.Line) + ": "
	}
	return s + e.Msg
}

// Unwrap returns ErrInvalidPolicy.
func (e *Error) Unwrap() error { return ErrInvalidPolicy }
