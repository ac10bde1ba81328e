package client

import (
	"context"
)

// Do sends a request to any API path (e.g. "/v1/auth/approle/role/payments")
// with in as the JSON body (nil for none) and decodes the answer into out
// (nil to discard). It is the escape hatch for endpoints without a typed method.
func (c *Client) Do(ctx context.Context, method, path string, in, out any) error {
	return c.do(ctx, method, path, nil, in, out)
}

// Login is the answer of every auth method's login: a new token.
type Login struct {
	Token string    `json:"token"`
	Info  TokenInfo `json:"info"`
}

func (c *Client) login(ctx context.Context, path string, in any) (*Login, error) {
	var l Login
	if err := c.do(ctx, "POST", path, nil, in, &l); err != nil {
		return nil, err
	}
	return &l, nil
}

// LoginAppRole logs in with a role_id and secret_id.
func (c *Client) LoginAppRole(ctx context.Context, roleID, secretID string) (*Login, error) {
	return c.login(ctx, "/v1/auth/approle/login", map[string]string{"role_id": roleID, "secret_id": secretID})
}

// LoginJWT logs in with a JWT (a Kubernetes service-account token, a CI
// OIDC token, ...) for a role.
func (c *Client) LoginJWT(ctx context.Context, role, jwt string) (*Login, error) {
	return c.login(ctx, "/v1/auth/jwt/login", map[string]string{"role": role, "jwt": jwt})
}

// LoginUserpass logs in with a username, password and, when enrolled, a TOTP code.
func (c *Client) LoginUserpass(ctx context.Context, username, password, totp string) (*Login, error) {
	in := map[string]string{"username": username, "password": password}
	if totp != "" {
		in["totp"] = totp
	}
	return c.login(ctx, "/v1/auth/userpass/login", in)
}

// LoginCert logs in with the client certificate of the TLS connection;
// configure it with Config.ClientCertFile and ClientKeyFile. role may be "".
func (c *Client) LoginCert(ctx context.Context, role string) (*Login, error) {
	in := map[string]string{}
	if role != "" {
		in["role"] = role
	}
	return c.login(ctx, "/v1/auth/cert/login", in)
}
