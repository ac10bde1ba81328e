package userpass

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/pquerna/otp"
	"github.com/pquerna/otp/totp"

	"github.com/coffer-dev/coffer/internal/auth"
)

const stepLen = totpPeriod * time.Second

// codeAt returns the TOTP code of secret at t, as an authenticator app would.
func codeAt(t testing.TB, secret string, at time.Time) string {
	t.Helper()
	code, err := totp.GenerateCodeCustom(secret, at, totp.ValidateOpts{Period: totpPeriod, Digits: otp.DigitsSix, Algorithm: otp.AlgorithmSHA1})
	if err != nil {
		t.Fatal(err)
	}
	return code
}

// enrol enrols username in TOTP, then moves the clock one step on so the
// confirmation code is no longer current. It returns the secret.
func enrol(t testing.TB, e *env, username string) string {
	t.Helper()
	ctx := context.Background()
	secret, _, err := e.svc.EnrollTOTP(ctx, username, "")
	if err != nil {
		t.Fatalf("EnrollTOTP(%s) = %v", username, err)
	}
	if err := e.svc.ConfirmTOTP(ctx, username, codeAt(t, secret, e.clock.t)); err != nil {
		t.Fatalf("ConfirmTOTP(%s) = %v", username, err)
	}
	e.clock.advance(stepLen)
	return secret
}

// otherCode returns a 6-digit code that differs from code.
func otherCode(code string) string {
	b := []byte(code)
	b[0] = '0' + (b[0]-'0'+1)%10
	return string(b)
}

func TestEnrollTOTP(t *testing.T) {
	tests := []struct {
		name       string
		issuer     string
		wantIssuer string
		wantErr    bool
	}{
		{"default issuer", "", "Coffer", false},
		{"custom issuer", "Acme Corp", "Acme Corp", false},
		{"colon in issuer", "Acme:Corp", "", true},
		{"control character", "Acme\nCorp", "", true},
		{"long issuer", string(make([]byte, MaxIssuerLen+1)), "", true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := newEnv(t, Options{})
			ctx := context.Background()
			mustPutUser(t, e.svc, UserInput{Username: "lena", Password: strp(testPassword)})
			secret, url, err := e.svc.EnrollTOTP(ctx, "lena", tt.issuer)
			if tt.wantErr {
				var ie *auth.InputError
				if !errors.As(err, &ie) || ie.Field != "issuer" {
					t.Fatalf("EnrollTOTP(issuer %q) = %v, want an InputError on issuer", tt.issuer, err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			key, err := otp.NewKeyFromURL(url)
			if err != nil {
				t.Fatalf("NewKeyFromURL(%q) = %v", url, err)
			}
			if key.Type() != "totp" || key.Issuer() != tt.wantIssuer || key.AccountName() != "lena" || key.Secret() != secret ||
				key.Algorithm() != otp.AlgorithmSHA1 || key.Digits() != otp.DigitsSix || key.Period() != totpPeriod {
				t.Fatalf("otpauth URL %q does not describe a standard TOTP key for lena", url)
			}
			if len(secret) != 32 { // base32 of 20 bytes
				t.Errorf("secret has %d base32 characters, want 32", len(secret))
			}
			u, _ := e.svc.GetUser(ctx, "lena")
			if !u.TOTPPending || u.TOTPEnrolled {
				t.Fatalf("after EnrollTOTP GetUser = %+v, want pending and not enrolled", u)
			}
			// A pending secret plays no part in login.
			l, err := e.svc.Login(ctx, "lena", testPassword, codeAt(t, secret, e.clock.t))
			if err != nil || l.MFA {
				t.Fatalf("Login with a pending enrolment = %+v, %v, want success without MFA", l, err)
			}
		})
	}
}

func TestConfirmTOTP(t *testing.T) {
	tests := []struct {
		name      string
		noPending bool
		code      func(secret string, now time.Time) string
		wantErr   error
	}{
		{"current code", false, func(s string, now time.Time) string { return codeAt(t, s, now) }, nil},
		{"previous step", false, func(s string, now time.Time) string { return codeAt(t, s, now.Add(-stepLen)) }, nil},
		{"two steps old", false, func(s string, now time.Time) string { return codeAt(t, s, now.Add(-2*stepLen)) }, ErrInvalidTOTPCode},
		{"wrong code", false, func(s string, now time.Time) string { return otherCode(codeAt(t, s, now)) }, ErrInvalidTOTPCode},
		{"empty code", false, func(string, time.Time) string { return "" }, ErrInvalidTOTPCode},
		{"nothing pending", true, func(string, time.Time) string { return "123456" }, ErrNoPendingTOTP},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := newEnv(t, Options{})
			ctx := context.Background()
			mustPutUser(t, e.svc, UserInput{Username: "mona", Password: strp(testPassword)})
			secret := ""
			if !tt.noPending {
				var err error
				if secret, _, err = e.svc.EnrollTOTP(ctx, "mona", ""); err != nil {
					t.Fatal(err)
				}
			}
			err := e.svc.ConfirmTOTP(ctx, "mona", tt.code(secret, e.clock.t))
			if !errors.Is(err, tt.wantErr) {
				t.Fatalf("ConfirmTOTP = %v, want %v", err, tt.wantErr)
			}
			u, _ := e.svc.GetUser(ctx, "mona")
			if enrolled := tt.wantErr == nil; u.TOTPEnrolled != enrolled || u.TOTPPending != (!enrolled && !tt.noPending) {
				t.Fatalf("after ConfirmTOTP GetUser = %+v", u)
			}
		})
	}
}

func TestLoginTOTP(t *testing.T) {
	tests := []struct {
		name        string
		mfaRequired bool
		code        func(secret string, now time.Time) string
		wantMFA     bool
		wantErr     error
	}{
		{"current step", true, func(s string, now time.Time) string { return codeAt(t, s, now) }, true, nil},
		{"previous step (slow clock)", true, func(s string, now time.Time) string { return codeAt(t, s, now.Add(-stepLen)) }, true, nil},
		{"next step (fast clock)", true, func(s string, now time.Time) string { return codeAt(t, s, now.Add(stepLen)) }, true, nil},
		{"two steps behind", true, func(s string, now time.Time) string { return codeAt(t, s, now.Add(-2*stepLen)) }, false, ErrInvalidCredentials},
		{"two steps ahead", true, func(s string, now time.Time) string { return codeAt(t, s, now.Add(2*stepLen)) }, false, ErrInvalidCredentials},
		{"wrong code", true, func(s string, now time.Time) string { return otherCode(codeAt(t, s, now)) }, false, ErrInvalidCredentials},
		{"missing code", true, func(string, time.Time) string { return "" }, false, ErrInvalidCredentials},
		{"seven digits", true, func(s string, now time.Time) string { return codeAt(t, s, now) + "0" }, false, ErrInvalidCredentials},
		{"letters", true, func(string, time.Time) string { return "abcdef" }, false, ErrInvalidCredentials},
		{"confirmation code replayed", true, func(s string, now time.Time) string { return codeAt(t, s, now.Add(-stepLen)) }, false, ErrInvalidCredentials},
		{"optional: no code", false, func(string, time.Time) string { return "" }, false, nil},
		{"optional: valid code", false, func(s string, now time.Time) string { return codeAt(t, s, now) }, true, nil},
		{"optional: wrong code", false, func(s string, now time.Time) string { return otherCode(codeAt(t, s, now)) }, false, ErrInvalidCredentials},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := newEnv(t, Options{})
			mustPutUser(t, e.svc, UserInput{Username: "nina", Password: strp(testPassword), MFARequired: boolp(tt.mfaRequired)})
			secret := enrol(t, e, "nina")
			if tt.name != "confirmation code replayed" {
				e.clock.advance(stepLen) // the confirmation's step is out of the skew window
			}
			l, err := e.svc.Login(context.Background(), "nina", testPassword, tt.code(secret, e.clock.t))
			if tt.wantErr != nil {
				if !errors.Is(err, tt.wantErr) || err.Error() != ErrInvalidCredentials.Error() {
					t.Fatalf("Login = %v, want %v", err, tt.wantErr)
				}
				return
			}
			if err != nil || l.MFA != tt.wantMFA {
				t.Fatalf("Login = %+v, %v, want MFA %v", l, err, tt.wantMFA)
			}
		})
	}
}

func TestTOTPReplay(t *testing.T) {
	e := newEnv(t, Options{})
	ctx := context.Background()
	mustPutUser(t, e.svc, UserInput{Username: "omar", Password: strp(testPassword), MFARequired: boolp(true)})
	secret := enrol(t, e, "omar")
	e.clock.advance(stepLen)
	type attempt struct {
		name    string
		advance time.Duration
		codeAt  time.Duration // offset of the code's time from now
		ok      bool
	}
	code := ""
	for _, a := range []attempt{
		{"fresh code", 0, 0, true},
		{"same code again", 0, 0, false},
		{"same code next step (within skew)", stepLen, -stepLen, false},
		{"new step's code", 0, 0, true},
		{"code of the next step", 0, stepLen, true},
		{"then the current code (earlier step)", 0, 0, false},
		{"later, a fresh code", 2 * stepLen, 0, true},
	} {
		e.clock.advance(a.advance)
		code = codeAt(t, secret, e.clock.t.Add(a.codeAt))
		l, err := e.svc.Login(ctx, "omar", testPassword, code)
		if a.ok != (err == nil) || a.ok && !l.MFA {
			t.Fatalf("%s: Login = %+v, %v, want ok %v", a.name, l, err, a.ok)
		}
		if !a.ok && !errors.Is(err, ErrInvalidCredentials) {
			t.Fatalf("%s: Login = %v, want ErrInvalidCredentials", a.name, err)
		}
	}
}

func TestMFARequiredBeforeEnrolment(t *testing.T) {
	e := newEnv(t, Options{})
	mustPutUser(t, e.svc, UserInput{Username: "pia", Password: strp(testPassword), MFARequired: boolp(true)})
	l, err := e.svc.Login(context.Background(), "pia", testPassword, "")
	if err != nil {
		t.Fatalf("Login before enrolment = %v", err)
	}
	if l.MFA || l.Meta["mfa_enrollment_required"] != "true" {
		t.Fatalf("Login before enrolment = %+v, want MFA false and mfa_enrollment_required", l)
	}
	enrol(t, e, "pia")
	if _, err := e.svc.Login(context.Background(), "pia", testPassword, ""); !errors.Is(err, ErrInvalidCredentials) {
		t.Fatalf("Login after enrolment without a code = %v, want ErrInvalidCredentials", err)
	}
}

func TestTOTPFailuresLockOut(t *testing.T) {
	e := newEnv(t, Options{})
	ctx := context.Background()
	mustPutUser(t, e.svc, UserInput{Username: "quinn", Password: strp(testPassword), MFARequired: boolp(true)})
	secret := enrol(t, e, "quinn")
	for i := range DefaultMaxFailures {
		_, err := e.svc.Login(ctx, "quinn", testPassword, otherCode(codeAt(t, secret, e.clock.t)))
		want := ErrInvalidCredentials
		if i == DefaultMaxFailures-1 {
			want = ErrLocked
		}
		if !errors.Is(err, want) {
			t.Fatalf("attempt %d with a wrong code: Login = %v, want %v", i+1, err, want)
		}
	}
	if _, err := e.svc.Login(ctx, "quinn", testPassword, codeAt(t, secret, e.clock.t)); !errors.Is(err, ErrLocked) {
		t.Fatalf("Login with the right code while locked = %v, want ErrLocked", err)
	}
}

func TestDisableTOTP(t *testing.T) {
	e := newEnv(t, Options{})
	ctx := context.Background()
	mustPutUser(t, e.svc, UserInput{Username: "rita", Password: strp(testPassword), MFARequired: boolp(true)})
	secret := enrol(t, e, "rita")
	if _, _, err := e.svc.EnrollTOTP(ctx, "rita", ""); err != nil {
		t.Fatal(err)
	}
	if err := e.svc.DisableTOTP(ctx, "rita"); err != nil {
		t.Fatal(err)
	}
	if u, _ := e.svc.GetUser(ctx, "rita"); u.TOTPEnrolled || u.TOTPPending {
		t.Fatalf("after DisableTOTP GetUser = %+v", u)
	}
	l, err := e.svc.Login(ctx, "rita", testPassword, codeAt(t, secret, e.clock.t))
	if err != nil || l.MFA {
		t.Fatalf("Login after DisableTOTP = %+v, %v, want success without MFA", l, err)
	}
	if err := e.svc.DisableTOTP(ctx, "rita"); err != nil {
		t.Fatalf("DisableTOTP twice = %v", err)
	}
}

// TestTOTPRotation checks that re-enrolling keeps the old secret until the
// new one is confirmed.
func TestTOTPRotation(t *testing.T) {
	e := newEnv(t, Options{})
	ctx := context.Background()
	mustPutUser(t, e.svc, UserInput{Username: "sam", Password: strp(testPassword), MFARequired: boolp(true)})
	oldSecret := enrol(t, e, "sam")
	newSecret, _, err := e.svc.EnrollTOTP(ctx, "sam", "")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := e.svc.Login(ctx, "sam", testPassword, codeAt(t, oldSecret, e.clock.t)); err != nil {
		t.Fatalf("Login with the old secret before confirmation = %v", err)
	}
	e.clock.advance(stepLen)
	if err := e.svc.ConfirmTOTP(ctx, "sam", codeAt(t, newSecret, e.clock.t)); err != nil {
		t.Fatal(err)
	}
	e.clock.advance(stepLen)
	if _, err := e.svc.Login(ctx, "sam", testPassword, codeAt(t, oldSecret, e.clock.t)); !errors.Is(err, ErrInvalidCredentials) {
		t.Fatalf("Login with the old secret after rotation = %v, want ErrInvalidCredentials", err)
	}
	if l, err := e.svc.Login(ctx, "sam", testPassword, codeAt(t, newSecret, e.clock.t)); err != nil || !l.MFA {
		t.Fatalf("Login with the new secret = %+v, %v", l, err)
	}
}
