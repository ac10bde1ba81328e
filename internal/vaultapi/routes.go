package vaultapi

import "net/http"

// Methods Vault treats alike: POST and PUT both write.
var writeMethods = []string{http.MethodPost, http.MethodPut}

// table is every route of the API.
func (a *API) table() []*route {
	base := "/v1/" + a.mount
	data, meta := base+"/data/{path...}", base+"/metadata/{path...}"
	var rs []*route
	add := func(methods []string, rt route) {
		for _, m := range methods {
			r := rt
			r.method = m
			rs = append(rs, &r)
		}
	}
	one := func(m string) []string { return []string{m} }

	// KV version 2.
	add(one("GET"), route{pattern: data, op: "vault.kv.read", capability: "read", secret: true, handle: a.kvRead})
	add(writeMethods, route{pattern: data, op: "vault.kv.write", capability: capCustom, secret: true, handle: a.kvWrite})
	add(one("PATCH"), route{pattern: data, op: "vault.kv.patch", capability: "update", secret: true, handle: a.kvPatch})
	add(one("DELETE"), route{pattern: data, op: "vault.kv.delete", capability: "delete", secret: true, handle: a.kvDelete})
	add(writeMethods, route{pattern: base + "/delete/{path...}", op: "vault.kv.delete-versions", capability: "delete", secret: true, handle: a.kvDeleteVersions})
	add(writeMethods, route{pattern: base + "/undelete/{path...}", op: "vault.kv.undelete", capability: "delete", secret: true, handle: a.kvUndelete})
	add(writeMethods, route{pattern: base + "/destroy/{path...}", op: "vault.kv.destroy", capability: "destroy", secret: true, handle: a.kvDestroy})
	add(one("GET"), route{pattern: meta, op: "vault.kv.metadata-read", capability: "read", secret: true, handle: a.metadataRead})
	add(writeMethods, route{pattern: meta, op: "vault.kv.metadata-write", capability: "update", secret: true, handle: a.metadataWrite})
	add(one("PATCH"), route{pattern: meta, op: "vault.kv.metadata-patch", capability: "update", secret: true, handle: a.metadataPatch})
	add(one("DELETE"), route{pattern: meta, op: "vault.kv.metadata-delete", capability: "delete", secret: true, handle: a.metadataDelete})
	// Lists are filtered name by name rather than refused, like the native
	// API's. The official client lists with GET ?list=true on a path without
	// its trailing slash, so the mount's root answers at .../metadata too.
	for _, p := range []string{meta, base + "/metadata"} {
		add(one("LIST"), route{pattern: p, op: "vault.kv.list", capability: capCustom, handle: a.kvList})
		add(one("GET"), route{pattern: p, op: "vault.kv.list", capability: capCustom, handle: a.kvList, viaGETList: true})
	}
	// GET on the bare root without list=true names no secret: a 400.
	add(one("GET"), route{pattern: base + "/metadata", op: "vault.kv.metadata-read", capability: "read", secret: true, handle: a.metadataRead})

	// Tokens and AppRole.
	add([]string{"GET", "POST"}, route{pattern: "/v1/auth/token/lookup-self", op: "vault.token.lookup-self", capability: capSelf, handle: a.tokenLookupSelf})
	add(writeMethods, route{pattern: "/v1/auth/token/renew-self", op: "vault.token.renew-self", capability: capSelf, handle: a.tokenRenewSelf})
	add(writeMethods, route{pattern: "/v1/auth/token/create", op: "vault.token.create", capability: capCustom, handle: a.tokenCreate})
	add(writeMethods, route{pattern: "/v1/auth/token/create-orphan", op: "vault.token.create-orphan", capability: capCustom, handle: a.tokenCreate})
	add(writeMethods, route{pattern: "/v1/auth/approle/login", op: "vault.approle.login", access: public, changes: true, handle: a.approleLogin})

	// sys.
	add(one("GET"), route{pattern: "/v1/sys/health", op: "vault.sys.health", access: public, handle: a.health})
	add(one("GET"), route{pattern: "/v1/sys/seal-status", op: "vault.sys.seal-status", access: public, handle: a.sealStatus})
	add(one("GET"), route{pattern: "/v1/sys/internal/ui/mounts/{path...}", op: "vault.sys.mount-info", capability: capSelf, handle: a.mountInfo})
	return rs
}
