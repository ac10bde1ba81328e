package client

import (
	"context"
	"encoding/json"
	"net/url"
	"time"
)

// Policy is a stored policy.
type Policy struct {
	Name      string    `json:"name"`
	Source    string    `json:"source"`
	Revision  int       `json:"revision"`
	Deleted   bool      `json:"deleted"`
	UpdatedAt time.Time `json:"updated_at"`
	UpdatedBy string    `json:"updated_by"`
}

// PolicySummary names a policy and its revision.
type PolicySummary struct {
	Name     string `json:"name"`
	Revision int    `json:"revision"`
}

// ListPolicies lists the server's policies.
func (c *Client) ListPolicies(ctx context.Context) ([]PolicySummary, error) {
	var out struct {
		Policies []PolicySummary `json:"policies"`
	}
	return out.Policies, c.do(ctx, "GET", "/v1/sys/policies", nil, nil, &out)
}

// ReadPolicy returns one policy.
func (c *Client) ReadPolicy(ctx context.Context, name string) (*Policy, error) {
	var p Policy
	return &p, c.do(ctx, "GET", "/v1/sys/policy/"+url.PathEscape(name), nil, nil, &p)
}

// WritePolicy creates or replaces one policy from HCL source.
func (c *Client) WritePolicy(ctx context.Context, name, source string) (*Policy, error) {
	var p Policy
	return &p, c.do(ctx, "PUT", "/v1/sys/policy/"+url.PathEscape(name), nil, map[string]string{"source": source}, &p)
}

// DeletePolicy deletes a policy; its history stays.
func (c *Client) DeletePolicy(ctx context.Context, name string) error {
	return c.do(ctx, "DELETE", "/v1/sys/policy/"+url.PathEscape(name), nil, nil, nil)
}

// PolicyPlan is what applying a set of policies changes.
type PolicyPlan struct {
	Create    []string `json:"create"`
	Update    []string `json:"update"`
	Delete    []string `json:"delete"`
	Unchanged []string `json:"unchanged"`
}

// PlanPolicies validates policies (name -> HCL) and returns the diff against the server.
func (c *Client) PlanPolicies(ctx context.Context, policies map[string]string, prune bool) (*PolicyPlan, error) {
	var p PolicyPlan
	return &p, c.do(ctx, "POST", "/v1/sys/policies/plan", nil, map[string]any{"policies": policies, "prune": prune}, &p)
}

// ApplyPolicies makes the server's policies match, atomically.
func (c *Client) ApplyPolicies(ctx context.Context, policies map[string]string, prune bool) (*PolicyPlan, error) {
	var p PolicyPlan
	return &p, c.do(ctx, "POST", "/v1/sys/policies", nil, map[string]any{"policies": policies, "prune": prune}, &p)
}

// PolicyHistory returns every revision of a policy, oldest first.
func (c *Client) PolicyHistory(ctx context.Context, name string) ([]Policy, error) {
	var out struct {
		Revisions []Policy `json:"revisions"`
	}
	return out.Revisions, c.do(ctx, "GET", "/v1/sys/policy/"+url.PathEscape(name)+"/history", nil, nil, &out)
}

// RestorePolicy makes an earlier revision current again.
func (c *Client) RestorePolicy(ctx context.Context, name string, revision int) (*Policy, error) {
	var p Policy
	return &p, c.do(ctx, "POST", "/v1/sys/policy/"+url.PathEscape(name)+"/restore", nil, map[string]int{"revision": revision}, &p)
}

// ExplainInput asks why a token may or may not do something. With neither
// Token nor Accessor it explains the client's own token.
type ExplainInput struct {
	Token      string `json:"token,omitempty"`
	Accessor   string `json:"accessor,omitempty"`
	Path       string `json:"path"`
	Capability string `json:"capability"`
	Source     string `json:"source,omitempty"`
}

// Explanation names the rules that decided.
type Explanation struct {
	Allowed  bool            `json:"allowed"`
	Root     bool            `json:"root"`
	Decision json.RawMessage `json:"decision"`
	Matches  json.RawMessage `json:"matches"`
	Policies []string        `json:"policies"`
}

// ExplainPolicy evaluates a request against a token's policies.
func (c *Client) ExplainPolicy(ctx context.Context, in ExplainInput) (*Explanation, error) {
	var e Explanation
	return &e, c.do(ctx, "POST", "/v1/sys/policies/explain", nil, in, &e)
}
