package httpapi

import (
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"time"

	"github.com/coffer-dev/coffer/internal/auth"
	"github.com/coffer-dev/coffer/internal/auth/userpass"
)

func (a *API) userpassRoutes() []route {
	userPath := func(r *request) string { return "auth/userpass/users/" + r.PathValue("user") }
	return []route{
		{"GET", "/v1/auth/userpass/users", Op{"userpass.user-list", "list"}, authenticated, a.userpassList, fixed("auth/userpass/users")},
		{"PUT", "/v1/auth/userpass/users/{user}", Op{"userpass.user-write", "update"}, authenticated, a.userpassPut, userPath},
		{"GET", "/v1/auth/userpass/users/{user}", Op{"userpass.user-read", capCustom}, authenticated, a.userpassGet, nil},
		{"DELETE", "/v1/auth/userpass/users/{user}", Op{"userpass.user-delete", "delete"}, authenticated, a.userpassDelete, userPath},
		{"POST", "/v1/auth/userpass/users/{user}/password", Op{"userpass.password", capCustom}, authenticated, a.userpassPassword, nil},
		{"POST", "/v1/auth/userpass/users/{user}/totp", Op{"userpass.totp-enroll", capCustom}, authenticated, a.userpassEnroll, nil},
		{"POST", "/v1/auth/userpass/users/{user}/totp/confirm", Op{"userpass.totp-confirm", capCustom}, authenticated, a.userpassConfirm, nil},
		{"DELETE", "/v1/auth/userpass/users/{user}/totp", Op{"userpass.totp-disable", "update"}, authenticated, a.userpassDisableTOTP, userPath},
		{"POST", "/v1/auth/userpass/users/{user}/unlock", Op{"userpass.unlock", "update"}, authenticated, a.userpassUnlock, userPath},
		{"POST", "/v1/auth/userpass/login", Op{"userpass.login", ""}, public, a.userpassLogin, fixed("auth/userpass/login")},
	}
}

// selfTOTP is selfOr for the TOTP enrolment endpoints: once a second
// factor is enrolled, replacing it takes that factor (a token whose login
// passed TOTP), so that a stolen password alone cannot swap in the
// thief's authenticator and lock the owner out.
func (a *API) selfTOTP(r *request, op string) error {
	user := r.PathValue("user")
	if r.principal.Method != "userpass" || r.principal.IdentityID != "userpass:"+user || r.principal.MFA {
		return a.selfOr(r, op, "update")
	}
	u, err := a.core.UserPass.GetUser(r.ctx, user)
	if err != nil {
		return err
	}
	if u.TOTPEnrolled {
		if a.authorize(r, op, "auth/userpass/users/"+user, "update") == nil {
			return nil
		}
		return fmt.Errorf("%w: a TOTP authenticator is already enrolled: log in with it (password and totp) to replace it, or ask an administrator to disable it", auth.ErrForbidden)
	}
	return nil
}

// selfOr lets a userpass user act on their own account, and anyone else
// with capability on auth/userpass/users/NAME.
func (a *API) selfOr(r *request, op, capability string) error {
	user := r.PathValue("user")
	if r.principal.Method == "userpass" && r.principal.IdentityID == "userpass:"+user {
		return nil
	}
	return a.authorize(r, op, "auth/userpass/users/"+user, capability)
}

// UserRequest is the body of PUT /v1/auth/userpass/users/{user}.
type UserRequest struct {
	Password    *string `json:"password"`
	MFARequired *bool   `json:"mfa_required"`
	auth.TokenSettings
}

func (a *API) userpassPut(r *request) (any, error) {
	var in UserRequest
	if err := decode(r, &in); err != nil {
		return nil, err
	}
	// A user's token policies go to whoever logs in as them: like a child
	// token, they may name only policies the writer holds.
	if err := auth.CheckDelegation(r.principal, in.TokenSettings.Policies); err != nil {
		return nil, err
	}
	ts := in.TokenSettings
	return a.core.UserPass.PutUser(r.ctx, userpass.UserInput{Username: r.PathValue("user"), Password: in.Password,
		MFARequired: in.MFARequired, TokenSettings: &ts})
}

func (a *API) userpassGet(r *request) (any, error) {
	if err := a.selfOr(r, "userpass.user-read", "read"); err != nil {
		return nil, err
	}
	return a.core.UserPass.GetUser(r.ctx, r.PathValue("user"))
}

func (a *API) userpassDelete(r *request) (any, error) {
	return nil, a.core.UserPass.DeleteUser(r.ctx, r.PathValue("user"))
}

func (a *API) userpassList(r *request) (any, error) {
	names, err := a.core.UserPass.ListUsers(r.ctx)
	return map[string]any{"users": nonNil(names)}, err
}

func (a *API) userpassPassword(r *request) (any, error) {
	var in struct {
		Password        string `json:"password"`
		CurrentPassword string `json:"current_password"`
		TOTP            string `json:"totp"`
	}
	if err := decode(r, &in); err != nil {
		return nil, err
	}
	user := r.PathValue("user")
	// An admin (update on the user) resets; the user themself must prove
	// they know the current password (and TOTP), so a stolen token alone
	// cannot take the account over.
	if r.principal.BreakGlass {
		return nil, fmt.Errorf("%w: a break-glass token cannot set passwords", auth.ErrForbidden)
	}
	if a.authorize(r, "userpass.password", "auth/userpass/users/"+user, "update") != nil {
		if r.principal.Method != "userpass" || r.principal.IdentityID != "userpass:"+user {
			return nil, fmt.Errorf("%w: changing another user's password needs update on auth/userpass/users/%s", auth.ErrForbidden, user)
		}
		if _, err := a.core.UserPass.Login(r.ctx, user, in.CurrentPassword, in.TOTP); err != nil {
			return nil, fmt.Errorf("%w: current_password (and totp, when enrolled) must be given and correct", auth.ErrForbidden)
		}
	}
	return nil, a.core.UserPass.SetPassword(r.ctx, user, in.Password)
}

func (a *API) userpassEnroll(r *request) (any, error) {
	if err := a.selfTOTP(r, "userpass.totp-enroll"); err != nil {
		return nil, err
	}
	secret, url, err := a.core.UserPass.EnrollTOTP(r.ctx, r.PathValue("user"), "Coffer")
	if err != nil {
		return nil, err
	}
	return map[string]string{"secret": secret, "otpauth_url": url,
		"next": "add it to an authenticator app, then confirm with a current code"}, nil
}

func (a *API) userpassConfirm(r *request) (any, error) {
	if err := a.selfTOTP(r, "userpass.totp-confirm"); err != nil {
		return nil, err
	}
	var in struct {
		Code string `json:"code"`
	}
	if err := decode(r, &in); err != nil {
		return nil, err
	}
	if err := a.core.UserPass.ConfirmTOTP(r.ctx, r.PathValue("user"), in.Code); err != nil {
		return nil, err
	}
	return a.core.UserPass.GetUser(r.ctx, r.PathValue("user"))
}

func (a *API) userpassDisableTOTP(r *request) (any, error) {
	return nil, a.core.UserPass.DisableTOTP(r.ctx, r.PathValue("user"))
}

func (a *API) userpassUnlock(r *request) (any, error) {
	return nil, a.core.UserPass.Unlock(r.ctx, r.PathValue("user"))
}

func (a *API) userpassLogin(r *request) (any, error) {
	if err := a.unsealed(); err != nil {
		return nil, err
	}
	var in struct {
		Username string `json:"username"`
		Password string `json:"password"`
		TOTP     string `json:"totp"`
	}
	if err := decode(r, &in); err != nil {
		return nil, err
	}
	r.sensitive("username", in.Username)
	l, err := a.core.UserPass.Login(r.ctx, in.Username, in.Password, in.TOTP)
	var le *userpass.LockedError
	if errors.As(err, &le) {
		r.w.Header().Set("Retry-After", strconv.Itoa(int(le.RetryAfter/time.Second)+1))
	}
	return a.login(r, l, err)
}

func userpassError(err error) (int, string, string, bool) {
	var le *userpass.LockedError
	switch {
	case errors.As(err, &le):
		return http.StatusTooManyRequests, "locked", fmt.Sprintf("too many failed logins; the account is locked until %s", le.Until.UTC().Format(time.RFC3339)), true
	case errors.Is(err, userpass.ErrNotFound):
		return http.StatusNotFound, "not_found", "user not found", true
	case errors.Is(err, userpass.ErrNoPendingTOTP):
		return http.StatusConflict, "no_pending_totp", "no TOTP enrolment is pending; start one first", true
	case errors.Is(err, userpass.ErrInvalidTOTPCode):
		return http.StatusBadRequest, "invalid_request", "code: not a valid current TOTP code", true
	}
	return 0, "", "", false
}
