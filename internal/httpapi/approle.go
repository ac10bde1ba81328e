package httpapi

import (
	"errors"
	"fmt"
	"net/http"

	"github.com/coffer-dev/coffer/internal/auth"
	"github.com/coffer-dev/coffer/internal/auth/approle"
)

func (a *API) approleRoutes() []route {
	sidPath := func(r *request) string { return "auth/approle/role/" + r.PathValue("role") + "/secret-id" }
	rolePath := func(r *request) string { return "auth/approle/role/" + r.PathValue("role") }
	rs := a.roleRoutes("approle", a.approlePutRole, a.approleGetRole, a.approleDeleteRole, a.approleListRoles)
	return append(rs,
		route{"GET", "/v1/auth/approle/role/{role}/role-id", Op{"approle.role-id", "read"}, authenticated, a.approleRoleID, rolePath},
		route{"POST", "/v1/auth/approle/role/{role}/secret-id", Op{"approle.secret-id-create", "update"}, authenticated, a.approleNewSecretID, sidPath},
		route{"GET", "/v1/auth/approle/role/{role}/secret-id", Op{"approle.secret-id-list", "list"}, authenticated, a.approleListSecretIDs, sidPath},
		route{"DELETE", "/v1/auth/approle/role/{role}/secret-id/{accessor}", Op{"approle.secret-id-destroy", "delete"}, authenticated, a.approleDestroySecretID, sidPath},
		route{"POST", "/v1/auth/approle/login", Op{"approle.login", ""}, public, a.approleLogin, fixed("auth/approle/login")},
	)
}

func (a *API) approlePutRole(r *request) (any, error) {
	var in approle.Role
	if err := decode(r, &in); err != nil {
		return nil, err
	}
	in.Name = r.PathValue("role")
	// A role hands its policies to whoever logs in with it: like a child
	// token, it may carry only policies its writer holds.
	if err := auth.CheckDelegation(r.principal, in.Policies); err != nil {
		return nil, err
	}
	return a.core.AppRole.PutRole(r.ctx, in)
}

func (a *API) approleGetRole(r *request) (any, error) {
	return a.core.AppRole.GetRole(r.ctx, r.PathValue("role"))
}

func (a *API) approleDeleteRole(r *request) (any, error) {
	return nil, a.core.AppRole.DeleteRole(r.ctx, r.PathValue("role"))
}

func (a *API) approleListRoles(r *request) (any, error) {
	names, err := a.core.AppRole.ListRoles(r.ctx)
	return map[string]any{"roles": nonNil(names)}, err
}

func (a *API) approleRoleID(r *request) (any, error) {
	role, err := a.core.AppRole.GetRole(r.ctx, r.PathValue("role"))
	if err != nil {
		return nil, err
	}
	return map[string]string{"role_id": role.RoleID}, nil
}

func (a *API) approleNewSecretID(r *request) (any, error) {
	if r.principal.BreakGlass {
		return nil, fmt.Errorf("%w: a break-glass token cannot create credentials", auth.ErrForbidden)
	}
	var in struct {
		Metadata map[string]string `json:"metadata"`
		CIDRs    []string          `json:"cidrs"`
	}
	if r.ContentLength != 0 {
		if err := decode(r, &in); err != nil {
			return nil, err
		}
	}
	sid, acc, exp, err := a.core.AppRole.GenerateSecretID(r.ctx, r.PathValue("role"), in.Metadata, in.CIDRs)
	if err != nil {
		return nil, err
	}
	r.status = http.StatusCreated
	return map[string]any{"secret_id": sid, "secret_id_accessor": acc, "expires_at": exp}, nil
}

func (a *API) approleListSecretIDs(r *request) (any, error) {
	list, err := a.core.AppRole.ListSecretIDAccessors(r.ctx, r.PathValue("role"))
	if list == nil {
		list = []approle.SecretIDInfo{}
	}
	return map[string]any{"secret_ids": list}, err
}

func (a *API) approleDestroySecretID(r *request) (any, error) {
	return nil, a.core.AppRole.DestroySecretID(r.ctx, r.PathValue("role"), r.PathValue("accessor"))
}

func (a *API) approleLogin(r *request) (any, error) {
	if err := a.unsealed(); err != nil {
		return nil, err
	}
	var in struct {
		RoleID   string `json:"role_id"`
		SecretID string `json:"secret_id"`
	}
	if err := decode(r, &in); err != nil {
		return nil, err
	}
	r.sensitive("role_id", in.RoleID)
	l, err := a.core.AppRole.Login(r.ctx, in.RoleID, in.SecretID, sourceAddr(r.Request))
	return a.login(r, l, err)
}

func approleError(err error) (int, string, string, bool) {
	switch {
	case errors.Is(err, approle.ErrNotFound):
		return http.StatusNotFound, "not_found", "approle role not found", true
	case errors.Is(err, approle.ErrSecretIDNotFound):
		return http.StatusNotFound, "not_found", "secret_id accessor not found", true
	}
	return 0, "", "", false
}
