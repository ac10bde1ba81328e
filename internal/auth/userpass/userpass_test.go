package userpass

import (
	"context"
	"encoding/json"
	"errors"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/coffer-dev/coffer/internal/auth"
	"github.com/coffer-dev/coffer/internal/storage/mem"
)

// testArgon2 returns parameters that keep tests fast; production uses the defaults.
func testArgon2() Argon2Params { return Argon2Params{Time: 1, Memory: 64, Threads: 1} }

const testPassword = "correct horse battery"

type clock struct{ t time.Time }

func (c *clock) now() time.Time          { return c.t }
func (c *clock) advance(d time.Duration) { c.t = c.t.Add(d) }

type env struct {
	svc   *Service
	clock *clock
	store *mem.Backend
	opts  Options
}

// restart returns a new Service over the same store and clock, as after a
// process restart.
func (e *env) restart() *Service { return New(e.store, e.opts) }

func newEnv(t testing.TB, opts Options) *env {
	t.Helper()
	c := &clock{t: time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)}
	if opts.Argon2 == (Argon2Params{}) {
		opts.Argon2 = testArgon2()
	}
	opts.Now = c.now
	be := mem.New()
	t.Cleanup(func() { be.Close() })
	return &env{svc: New(be, opts), clock: c, store: be, opts: opts}
}

func strp(s string) *string { return &s }
func boolp(b bool) *bool    { return &b }

func mustPutUser(t testing.TB, s *Service, in UserInput) *User {
	t.Helper()
	u, err := s.PutUser(context.Background(), in)
	if err != nil {
		t.Fatalf("PutUser(%s) = %v", in.Username, err)
	}
	return u
}

// rawRecord reads a user's stored record, bypassing the service.
func rawRecord(t testing.TB, e *env, name string) *record {
	t.Helper()
	raw, err := e.store.Get(context.Background(), userKey(name))
	if err != nil {
		t.Fatalf("Get(%s) = %v", name, err)
	}
	var r record
	if err := json.Unmarshal(raw, &r); err != nil {
		t.Fatal(err)
	}
	return &r
}

func TestPutUserValidation(t *testing.T) {
	e := newEnv(t, Options{})
	mustPutUser(t, e.svc, UserInput{Username: "existing", Password: strp(testPassword)})
	tests := []struct {
		name  string
		in    UserInput
		field string
	}{
		{"empty username", UserInput{Username: "", Password: strp(testPassword)}, "username"},
		{"uppercase username", UserInput{Username: "Alice", Password: strp(testPassword)}, "username"},
		{"slash in username", UserInput{Username: "a/b", Password: strp(testPassword)}, "username"},
		{"long username", UserInput{Username: strings.Repeat("a", MaxUsernameLen+1), Password: strp(testPassword)}, "username"},
		{"no password on create", UserInput{Username: "new"}, "password"},
		{"short password", UserInput{Username: "new", Password: strp("1234567")}, "password"},
		{"short in characters", UserInput{Username: "new", Password: strp("ééééééé")}, "password"},
		{"long password", UserInput{Username: "new", Password: strp(strings.Repeat("x", MaxPasswordLen+1))}, "password"},
		{"invalid utf-8", UserInput{Username: "new", Password: strp("abcdefgh\xff")}, "password"},
		{"root policy", UserInput{Username: "existing", TokenSettings: &auth.TokenSettings{Policies: []string{"root"}}}, "token"},
		{"negative ttl", UserInput{Username: "existing", TokenSettings: &auth.TokenSettings{TTL: -1}}, "token"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := e.svc.PutUser(context.Background(), tt.in)
			var ie *auth.InputError
			if !errors.As(err, &ie) || ie.Field != tt.field {
				t.Fatalf("PutUser(%+v) = %v, want an InputError on %s", tt.in, err, tt.field)
			}
			if tt.in.Password != nil && *tt.in.Password != "" && strings.Contains(err.Error(), *tt.in.Password) {
				t.Errorf("error %q quotes the password", err)
			}
		})
	}
}

func TestUserCRUD(t *testing.T) {
	e := newEnv(t, Options{})
	ctx := context.Background()
	ts := auth.TokenSettings{Policies: []string{"dev"}, TTL: auth.Duration(time.Hour)}
	u := mustPutUser(t, e.svc, UserInput{Username: "bob", Password: strp(testPassword), TokenSettings: &ts})
	if u.Username != "bob" || u.MFARequired || u.TOTPEnrolled || !slices.Equal(u.Policies, []string{"dev"}) || !u.CreatedAt.Equal(e.clock.t) {
		t.Fatalf("PutUser = %+v", u)
	}
	mustPutUser(t, e.svc, UserInput{Username: "alice", Password: strp(testPassword)})

	// An update without a password keeps it.
	e.clock.advance(time.Minute)
	u = mustPutUser(t, e.svc, UserInput{Username: "bob", MFARequired: boolp(true)})
	if !u.MFARequired || !slices.Equal(u.Policies, []string{"dev"}) || !u.UpdatedAt.Equal(e.clock.t) || u.CreatedAt.Equal(u.UpdatedAt) {
		t.Fatalf("PutUser(update) = %+v", u)
	}
	if _, err := e.svc.Login(ctx, "bob", testPassword, ""); err != nil {
		t.Fatalf("Login after update = %v", err)
	}

	got, err := e.svc.GetUser(ctx, "bob")
	if err != nil || !got.MFARequired {
		t.Fatalf("GetUser = %+v, %v", got, err)
	}
	names, err := e.svc.ListUsers(ctx)
	if err != nil || !slices.Equal(names, []string{"alice", "bob"}) {
		t.Fatalf("ListUsers = %v, %v", names, err)
	}
	if err := e.svc.DeleteUser(ctx, "bob"); err != nil {
		t.Fatal(err)
	}
	if _, err := e.svc.GetUser(ctx, "bob"); !errors.Is(err, ErrNotFound) {
		t.Fatalf("GetUser(deleted) = %v, want ErrNotFound", err)
	}
	if err := e.svc.DeleteUser(ctx, "bob"); !errors.Is(err, ErrNotFound) {
		t.Fatalf("DeleteUser(deleted) = %v, want ErrNotFound", err)
	}
	if _, err := e.svc.Login(ctx, "bob", testPassword, ""); !errors.Is(err, ErrInvalidCredentials) {
		t.Fatalf("Login(deleted) = %v, want ErrInvalidCredentials", err)
	}
	for _, op := range []struct {
		name string
		fn   func() error
	}{
		{"SetPassword", func() error { return e.svc.SetPassword(ctx, "nobody", testPassword) }},
		{"Unlock", func() error { return e.svc.Unlock(ctx, "nobody") }},
		{"DisableTOTP", func() error { return e.svc.DisableTOTP(ctx, "nobody") }},
		{"ConfirmTOTP", func() error { return e.svc.ConfirmTOTP(ctx, "nobody", "123456") }},
		{"EnrollTOTP", func() error { _, _, err := e.svc.EnrollTOTP(ctx, "nobody", ""); return err }},
	} {
		t.Run(op.name, func(t *testing.T) {
			if err := op.fn(); !errors.Is(err, ErrNotFound) {
				t.Errorf("%s(unknown user) = %v, want ErrNotFound", op.name, err)
			}
		})
	}
}

func TestSetPassword(t *testing.T) {
	e := newEnv(t, Options{})
	ctx := context.Background()
	mustPutUser(t, e.svc, UserInput{Username: "carol", Password: strp(testPassword)})
	if err := e.svc.SetPassword(ctx, "carol", "short"); err == nil {
		t.Fatal("SetPassword(short) = nil, want an error")
	}
	if err := e.svc.SetPassword(ctx, "carol", "a new passphrase"); err != nil {
		t.Fatal(err)
	}
	if _, err := e.svc.Login(ctx, "carol", testPassword, ""); !errors.Is(err, ErrInvalidCredentials) {
		t.Fatalf("Login(old password) = %v, want ErrInvalidCredentials", err)
	}
	if _, err := e.svc.Login(ctx, "carol", "a new passphrase", ""); err != nil {
		t.Fatalf("Login(new password) = %v", err)
	}
}

// TestSecretsNeverLeave checks that neither the password hash nor the TOTP
// secrets appear in what callers can see.
func TestSecretsNeverLeave(t *testing.T) {
	e := newEnv(t, Options{})
	ctx := context.Background()
	mustPutUser(t, e.svc, UserInput{Username: "dave", Password: strp(testPassword)})
	secret := enrol(t, e, "dave")
	pending, _, err := e.svc.EnrollTOTP(ctx, "dave", "")
	if err != nil {
		t.Fatal(err)
	}
	r := rawRecord(t, e, "dave")
	if r.PasswordHash == "" || r.TOTPSecret != secret || r.PendingTOTP != pending {
		t.Fatalf("stored record lacks the secrets: %+v", r)
	}
	u, err := e.svc.GetUser(ctx, "dave")
	if err != nil {
		t.Fatal(err)
	}
	out, err := json.Marshal(u)
	if err != nil {
		t.Fatal(err)
	}
	for _, s := range []string{r.PasswordHash, "argon2", secret, pending, testPassword} {
		if strings.Contains(string(out), s) {
			t.Errorf("GetUser JSON %s contains a secret", out)
		}
	}
	for _, field := range []string{`"username"`, `"mfa_required"`, `"totp_enrolled"`, `"totp_pending"`, `"failed_logins"`, `"created_at"`} {
		if !strings.Contains(string(out), field) {
			t.Errorf("GetUser JSON %s lacks %s", out, field)
		}
	}
}

func TestNewPanicsOnBadArgon2(t *testing.T) {
	defer func() {
		if recover() == nil {
			t.Fatal("New with memory below the minimum did not panic")
		}
	}()
	New(mem.New(), Options{Argon2: Argon2Params{Memory: 1}})
}
