package userpass

import (
	"context"
	"errors"
	"maps"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/coffer-dev/coffer/internal/auth"
)

func TestLogin(t *testing.T) {
	e := newEnv(t, Options{})
	ts := auth.TokenSettings{Policies: []string{"dev", "ops"}, TTL: auth.Duration(time.Hour), NumUses: 3}
	mustPutUser(t, e.svc, UserInput{Username: "erin@example.com", Password: strp(testPassword), TokenSettings: &ts})
	tests := []struct {
		name     string
		username string
		password string
		code     string
		wantErr  error
	}{
		{"right password", "erin@example.com", testPassword, "", nil},
		{"code ignored without enrolment", "erin@example.com", testPassword, "123456", nil},
		{"wrong password", "erin@example.com", testPassword + "!", "", ErrInvalidCredentials},
		{"empty password", "erin@example.com", "", "", ErrInvalidCredentials},
		{"unknown user", "frank", testPassword, "", ErrInvalidCredentials},
		{"malformed username", "Erin@example.com", testPassword, "", ErrInvalidCredentials},
		{"empty username", "", testPassword, "", ErrInvalidCredentials},
		{"overlong password", "erin@example.com", strings.Repeat("x", MaxPasswordLen+1), "", ErrInvalidCredentials},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			l, err := e.svc.Login(context.Background(), tt.username, tt.password, tt.code)
			if tt.wantErr != nil {
				if !errors.Is(err, tt.wantErr) || !errors.Is(err, auth.ErrUnauthenticated) || l != nil {
					t.Fatalf("Login(%q) = %v, %v, want %v wrapping auth.ErrUnauthenticated", tt.username, l, err, tt.wantErr)
				}
				// Unknown user and wrong password must be indistinguishable.
				if err.Error() != "invalid username or password" {
					t.Errorf("Login(%q) error = %q, want the generic message", tt.username, err)
				}
				return
			}
			if err != nil {
				t.Fatalf("Login(%q) = %v", tt.username, err)
			}
			want := &auth.Login{
				Method: "userpass", Name: "userpass/erin@example.com", IdentityID: "userpass:erin@example.com",
				Meta: map[string]string{"username": "erin@example.com"}, Token: ts,
			}
			if l.Method != want.Method || l.Name != want.Name || l.IdentityID != want.IdentityID || l.MFA ||
				!maps.Equal(l.Meta, want.Meta) || !slices.Equal(l.Token.Policies, ts.Policies) ||
				l.Token.TTL != ts.TTL || l.Token.NumUses != ts.NumUses {
				t.Fatalf("Login = %+v, want %+v", l, want)
			}
		})
	}
	// Failures above counted; the success in between did not reset later ones.
	if u, _ := e.svc.GetUser(context.Background(), "erin@example.com"); u.FailedLogins != 2 {
		t.Errorf("FailedLogins = %d, want 2 (the two wrong passwords)", u.FailedLogins)
	}
}

// step is one login attempt in a lockout scenario.
type step struct {
	name     string
	advance  time.Duration // clock moves this much before the attempt
	password string
	unlock   bool  // call Unlock before the attempt
	wantErr  error // nil, ErrInvalidCredentials or ErrLocked
	wantWait time.Duration
}

func runSteps(t *testing.T, e *env, username string, steps []step) {
	t.Helper()
	ctx := context.Background()
	for i, st := range steps {
		e.clock.advance(st.advance)
		if st.unlock {
			if err := e.svc.Unlock(ctx, username); err != nil {
				t.Fatalf("step %d (%s): Unlock = %v", i, st.name, err)
			}
		}
		_, err := e.svc.Login(ctx, username, st.password, "")
		switch {
		case st.wantErr == nil && err != nil:
			t.Fatalf("step %d (%s): Login = %v, want success", i, st.name, err)
		case st.wantErr != nil && !errors.Is(err, st.wantErr):
			t.Fatalf("step %d (%s): Login = %v, want %v", i, st.name, err, st.wantErr)
		case st.wantErr != nil && !errors.Is(err, auth.ErrUnauthenticated):
			t.Fatalf("step %d (%s): Login = %v, does not wrap auth.ErrUnauthenticated", i, st.name, err)
		}
		if st.wantWait != 0 {
			var le *LockedError
			if !errors.As(err, &le) || le.RetryAfter != st.wantWait ||
				left(le, e.clock.t) > st.wantWait || left(le, e.clock.t) <= st.wantWait-time.Second {
				t.Fatalf("step %d (%s): Login = %v, want a LockedError with %v left", i, st.name, err, st.wantWait)
			}
		}
	}
}

func left(le *LockedError, now time.Time) time.Duration { return le.Until.Sub(now) }

func fails(n int) []step {
	out := make([]step, n)
	for i := range out {
		out[i] = step{name: "wrong password", password: "wrong password", wantErr: ErrInvalidCredentials}
	}
	return out
}

func TestLockout(t *testing.T) {
	const right, wrong = testPassword, "wrong password"
	lockStep := step{name: "fifth failure locks", password: wrong, wantErr: ErrLocked, wantWait: 15 * time.Minute}
	tests := []struct {
		name  string
		opts  Options
		steps []step
	}{
		{"locks after five failures and expires", Options{}, append(fails(4), lockStep,
			step{name: "right password refused", password: right, wantErr: ErrLocked, wantWait: 15 * time.Minute},
			step{name: "still locked just before expiry", advance: 15*time.Minute - time.Millisecond, password: right, wantErr: ErrLocked, wantWait: time.Second},
			step{name: "expired", advance: time.Millisecond, password: right},
		)},
		{"lock does not extend on attempts", Options{}, append(fails(4), lockStep,
			step{name: "wrong during lock", advance: 10 * time.Minute, password: wrong, wantErr: ErrLocked, wantWait: 5 * time.Minute},
			step{name: "expires on schedule", advance: 5 * time.Minute, password: right},
		)},
		{"full set of attempts after expiry", Options{}, slices.Concat(fails(4), []step{lockStep},
			[]step{{name: "expired", advance: 15 * time.Minute, password: wrong, wantErr: ErrInvalidCredentials}},
			fails(3), []step{{name: "fifth again locks", password: wrong, wantErr: ErrLocked}},
		)},
		{"success resets the count", Options{}, slices.Concat(fails(4),
			[]step{{name: "success", password: right}}, fails(4),
			[]step{{name: "still open", password: right}},
		)},
		{"unlock", Options{}, append(fails(4), lockStep,
			step{name: "unlocked by admin", unlock: true, password: right},
		)},
		{"custom limit and duration", Options{MaxFailures: 2, LockoutDuration: time.Hour}, append(fails(1),
			step{name: "second failure locks", password: wrong, wantErr: ErrLocked, wantWait: time.Hour},
			step{name: "after an hour", advance: time.Hour, password: right},
		)},
		{"lockout disabled", Options{MaxFailures: -1}, append(fails(20),
			step{name: "never locked", password: right},
		)},
		{"retry-after rounds up", Options{}, append(fails(4), lockStep,
			step{name: "half a second in", advance: 500 * time.Millisecond, password: right, wantErr: ErrLocked, wantWait: 15 * time.Minute},
		)},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := newEnv(t, tt.opts)
			mustPutUser(t, e.svc, UserInput{Username: "gina", Password: strp(testPassword)})
			runSteps(t, e, "gina", tt.steps)
		})
	}
}

func TestLockoutShowsInUser(t *testing.T) {
	e := newEnv(t, Options{})
	ctx := context.Background()
	mustPutUser(t, e.svc, UserInput{Username: "hank", Password: strp(testPassword)})
	runSteps(t, e, "hank", fails(3))
	if u, _ := e.svc.GetUser(ctx, "hank"); u.FailedLogins != 3 || u.LockedUntil != nil {
		t.Fatalf("after 3 failures GetUser = %+v", u)
	}
	runSteps(t, e, "hank", fails(1))
	runSteps(t, e, "hank", []step{{name: "lock", password: "nope nope", wantErr: ErrLocked}})
	u, _ := e.svc.GetUser(ctx, "hank")
	if u.LockedUntil == nil || !u.LockedUntil.Equal(e.clock.t.Add(DefaultLockoutDuration)) {
		t.Fatalf("after lockout GetUser = %+v", u)
	}
	e.clock.advance(DefaultLockoutDuration)
	if u, _ := e.svc.GetUser(ctx, "hank"); u.LockedUntil != nil {
		t.Fatalf("after expiry LockedUntil = %v, want nil", u.LockedUntil)
	}
}

// TestLockoutSurvivesRestart checks that failure counts and locks live in
// storage, not in the Service.
func TestLockoutSurvivesRestart(t *testing.T) {
	e := newEnv(t, Options{})
	ctx := context.Background()
	mustPutUser(t, e.svc, UserInput{Username: "ivan", Password: strp(testPassword)})
	runSteps(t, e, "ivan", fails(3))

	e.svc = e.restart()
	runSteps(t, e, "ivan", fails(1))
	e.svc = e.restart()
	runSteps(t, e, "ivan", []step{{name: "fifth failure across restarts", password: "nope nope", wantErr: ErrLocked}})

	e.svc = e.restart()
	if _, err := e.svc.Login(ctx, "ivan", testPassword, ""); !errors.Is(err, ErrLocked) {
		t.Fatalf("Login after restart = %v, want ErrLocked", err)
	}
	e.clock.advance(DefaultLockoutDuration)
	if _, err := e.svc.Login(ctx, "ivan", testPassword, ""); err != nil {
		t.Fatalf("Login after expiry = %v", err)
	}
}

// TestLoginRehashes checks that a hash made with old parameters is replaced
// on the next successful login, and only then.
func TestLoginRehashes(t *testing.T) {
	e := newEnv(t, Options{})
	ctx := context.Background()
	mustPutUser(t, e.svc, UserInput{Username: "judy", Password: strp(testPassword)})
	old := rawRecord(t, e, "judy").PasswordHash

	e.opts.Argon2 = Argon2Params{Time: 2, Memory: 128, Threads: 1, KeyLen: 32, SaltLen: 16}
	e.svc = e.restart()
	if _, err := e.svc.Login(ctx, "judy", "wrong password", ""); !errors.Is(err, ErrInvalidCredentials) {
		t.Fatalf("Login(wrong) = %v", err)
	}
	if got := rawRecord(t, e, "judy").PasswordHash; got != old {
		t.Fatalf("a failed login replaced the hash")
	}
	if _, err := e.svc.Login(ctx, "judy", testPassword, ""); err != nil {
		t.Fatalf("Login with a hash of old parameters = %v", err)
	}
	h, err := parseHash(rawRecord(t, e, "judy").PasswordHash)
	if err != nil {
		t.Fatal(err)
	}
	if h.params != e.opts.Argon2 {
		t.Fatalf("after login the hash has %+v, want %+v", h.params, e.opts.Argon2)
	}
	if _, err := e.svc.Login(ctx, "judy", testPassword, ""); err != nil {
		t.Fatalf("Login with the new hash = %v", err)
	}
}

func TestLoginWaitsForHashSlot(t *testing.T) {
	e := newEnv(t, Options{MaxConcurrentHashes: 1})
	mustPutUser(t, e.svc, UserInput{Username: "kim", Password: strp(testPassword)})
	e.svc.hashSlots <- struct{}{} // every slot busy
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	for _, name := range []string{"kim", "unknown"} {
		if _, err := e.svc.Login(ctx, name, testPassword, ""); !errors.Is(err, context.Canceled) {
			t.Errorf("Login(%s) with all hash slots busy and a canceled context = %v, want context.Canceled", name, err)
		}
	}
	<-e.svc.hashSlots
	if _, err := e.svc.Login(context.Background(), "kim", testPassword, ""); err != nil {
		t.Fatalf("Login once a slot is free = %v", err)
	}
}

// BenchmarkLogin measures a login with the default argon2 parameters: the
// cost an attacker pays per guess, and a server per login.
func BenchmarkLogin(b *testing.B) {
	e := newEnv(b, Options{Argon2: Argon2Params{}.withDefaults()})
	mustPutUser(b, e.svc, UserInput{Username: "bench", Password: strp(testPassword)})
	ctx := context.Background()
	b.ReportAllocs()
	for b.Loop() {
		if _, err := e.svc.Login(ctx, "bench", testPassword, ""); err != nil {
			b.Fatal(err)
		}
	}
}
