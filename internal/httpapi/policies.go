package httpapi

import (
	"net/netip"
	"strings"

	"github.com/coffer-dev/coffer/internal/auth"
)

func (a *API) policyRoutes() []route {
	policyPath := func(r *request) string { return "sys/policies/" + r.PathValue("policy") }
	return []route{
		{"GET", "/v1/sys/policies", Op{"policy.list", "list"}, authenticated, a.policyList, fixed("sys/policies")},
		{"POST", "/v1/sys/policies", Op{"policy.apply", "update"}, authenticated, a.policyApply, fixed("sys/policies")},
		{"POST", "/v1/sys/policies/plan", Op{"policy.plan", "read"}, authenticated, a.policyPlan, fixed("sys/policies")},
		{"GET", "/v1/sys/policy/{policy}", Op{"policy.read", "read"}, authenticated, a.policyRead, policyPath},
		{"PUT", "/v1/sys/policy/{policy}", Op{"policy.write", "update"}, authenticated, a.policyWrite, policyPath},
		{"DELETE", "/v1/sys/policy/{policy}", Op{"policy.delete", "delete"}, authenticated, a.policyDelete, policyPath},
		{"GET", "/v1/sys/policy/{policy}/history", Op{"policy.history", "read"}, authenticated, a.policyHistory, policyPath},
		{"POST", "/v1/sys/policy/{policy}/restore", Op{"policy.restore", "update"}, authenticated, a.policyRestore, policyPath},
		{"POST", "/v1/sys/policies/explain", Op{"policy.explain", capCustom}, authenticated, a.policyExplain, nil},
	}
}

func (a *API) policyList(r *request) (any, error) {
	list, err := a.core.Policies.List(r.ctx)
	if err != nil {
		return nil, err
	}
	type item struct {
		Name     string `json:"name"`
		Revision int    `json:"revision"`
	}
	out := []item{}
	for _, p := range list {
		out = append(out, item{p.Name, p.Revision})
	}
	return map[string]any{"policies": out}, nil
}

// ApplyRequest is the body of POST /v1/sys/policies and .../plan: the
// desired policies by name. With prune, policies not named are deleted.
type ApplyRequest struct {
	Policies map[string]string `json:"policies"`
	Prune    bool              `json:"prune"`
}

func (a *API) policyApply(r *request) (any, error) {
	var in ApplyRequest
	if err := decode(r, &in); err != nil {
		return nil, err
	}
	return a.core.Policies.Apply(r.ctx, in.Policies, in.Prune, r.principal.Name)
}

func (a *API) policyPlan(r *request) (any, error) {
	var in ApplyRequest
	if err := decode(r, &in); err != nil {
		return nil, err
	}
	return a.core.Policies.PlanApply(r.ctx, in.Policies, in.Prune)
}

func (a *API) policyRead(r *request) (any, error) {
	return a.core.Policies.Get(r.ctx, r.PathValue("policy"))
}

func (a *API) policyWrite(r *request) (any, error) {
	var in struct {
		Source string `json:"source"`
	}
	if err := decode(r, &in); err != nil {
		return nil, err
	}
	if err := a.core.Policies.Put(r.ctx, r.PathValue("policy"), in.Source, r.principal.Name); err != nil {
		return nil, err
	}
	return a.core.Policies.Get(r.ctx, r.PathValue("policy"))
}

func (a *API) policyDelete(r *request) (any, error) {
	return nil, a.core.Policies.Delete(r.ctx, r.PathValue("policy"), r.principal.Name)
}

func (a *API) policyHistory(r *request) (any, error) {
	h, err := a.core.Policies.History(r.ctx, r.PathValue("policy"))
	if err != nil {
		return nil, err
	}
	return map[string]any{"revisions": h}, nil
}

func (a *API) policyRestore(r *request) (any, error) {
	var in struct {
		Revision int `json:"revision"`
	}
	if err := decode(r, &in); err != nil {
		return nil, err
	}
	return a.core.Policies.Restore(r.ctx, r.PathValue("policy"), in.Revision, r.principal.Name)
}

// ExplainRequest is the body of POST /v1/sys/policies/explain. Without
// token or accessor it explains the caller's own token.
type ExplainRequest struct {
	Token      string `json:"token"`
	Accessor   string `json:"accessor"`
	Path       string `json:"path"`
	Capability string `json:"capability"`
	Source     string `json:"source"`
}

func (a *API) policyExplain(r *request) (any, error) {
	var in ExplainRequest
	if err := decode(r, &in); err != nil {
		return nil, err
	}
	if in.Path == "" || in.Capability == "" {
		return nil, badRequest("path and capability are required")
	}
	p := r.principal
	if in.Token != "" || in.Accessor != "" {
		// Explaining another token's access reveals its policies: admins only.
		if err := a.authorize(r, "policy.explain", "sys/policies", "read"); err != nil {
			return nil, err
		}
		if in.Token != "" {
			e, lerr := a.core.Tokens.Lookup(r.ctx, in.Token)
			if lerr != nil {
				return nil, badRequest("token: not a live token")
			}
			p = e.Principal()
		} else {
			e, lerr := a.core.Tokens.LookupAccessor(r.ctx, in.Accessor)
			if lerr != nil {
				return nil, badRequest("accessor: no live token has it")
			}
			p = e.Principal()
		}
	}
	c := auth.Check{Op: "explain", Path: strings.TrimPrefix(in.Path, "/"), Capability: in.Capability, Source: sourceAddr(r.Request)}
	if in.Source != "" {
		addr, err := netip.ParseAddr(in.Source)
		if err != nil {
			return nil, badRequest("source must be an IP address")
		}
		c.Source = addr
	}
	return a.core.Policies.Explain(r.ctx, p, c)
}
