package agent

import (
	"encoding/json"
	"net/http"
	"net/netip"
	"net/url"
	"strconv"
	"strings"
)

const secretsPrefix = "/v1/secrets/"

// handler serves the cache listener: GET /v1/secrets/{name} (with ?version=
// or ?stage=) answered as the server would, with the agent's token, and GET
// /v1/sys/health about the agent itself. Applications send no token; the
// listener's reach (a 0600 socket, loopback TCP) is the boundary. Web
// browsers on the host can reach loopback TCP too, so the handler refuses
// every request with an Origin header (which browsers send and the SDK,
// curl and other programs do not), and the TCP listener also refuses Host
// names other than loopback ones (hostGuard), against DNS rebinding.
type handler struct {
	c       *cache
	m       *metrics
	health  func() (int, any)
	headers cacheHeaders
}

// cacheHeaders are header values shared by every response, built once so
// a hit allocates none. They are never modified.
type cacheHeaders struct {
	hit, miss, stale, noStore []string
}

func newCacheHeaders() cacheHeaders {
	return cacheHeaders{hit: []string{resultHit}, miss: []string{resultMiss}, stale: []string{resultStale}, noStore: []string{"no-store"}}
}

func (h *handler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if _, ok := r.Header["Origin"]; ok {
		writeAgentError(w, http.StatusForbidden, "origin_refused",
			"the agent refuses requests with an Origin header: only a web browser sends one, and web pages must not read the agent's secrets")
		return
	}
	path := r.URL.Path
	switch {
	case strings.HasPrefix(path, secretsPrefix):
		if r.Method != http.MethodGet {
			w.Header().Set("Allow", http.MethodGet)
			writeAgentError(w, http.StatusMethodNotAllowed, "method_not_allowed", "the agent serves reads only: GET")
			return
		}
		h.serveSecret(w, r, path[len(secretsPrefix):])
	case path == "/v1/sys/health":
		if r.Method != http.MethodGet {
			w.Header().Set("Allow", http.MethodGet)
			writeAgentError(w, http.StatusMethodNotAllowed, "method_not_allowed", "use GET")
			return
		}
		status, body := h.health()
		writeAgentJSON(w, status, body)
	default:
		writeAgentError(w, http.StatusNotFound, "not_found", "the agent serves GET /v1/secrets/{name} and GET /v1/sys/health")
	}
}

// hostGuard is the TCP listener's handler: it passes on only requests
// whose Host is localhost, a loopback address or a name in allowed, each
// without a port or with the listener's. A web page that makes its own
// host name resolve to 127.0.0.1 (DNS rebinding) is thus refused: its
// browser sends that name as the Host.
type hostGuard struct {
	next    http.Handler
	port    string   // ":" and the listener's port, in decimal
	allowed []string // cache allowed_hosts, in lower case
}

func (g *hostGuard) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if !g.allowedHost(r.Host) {
		writeAgentError(w, http.StatusForbidden, "host_refused",
			"the agent's TCP listener answers only requests whose Host header is localhost, a loopback address or a name in the cache block's allowed_hosts (against DNS rebinding by web pages)")
		return
	}
	g.next.ServeHTTP(w, r)
}

// allowedHost reports whether the Host header value hostport names the
// listener. It allocates nothing (but for some refused hosts).
func (g *hostGuard) allowedHost(hostport string) bool {
	host, port := hostport, ""
	bracketed := strings.HasPrefix(hostport, "[")
	if bracketed {
		end := strings.IndexByte(hostport, ']')
		if end < 0 {
			return false
		}
		host, port = hostport[1:end], hostport[end+1:]
	} else if i := strings.IndexByte(hostport, ':'); i >= 0 {
		host, port = hostport[:i], hostport[i:]
	}
	if port != "" && port != g.port {
		return false
	}
	if host == "" {
		return false
	}
	if bracketed || strings.Trim(host, "0123456789.") == "" {
		// An IPv6 address only in brackets, an IPv4 one only without.
		ip, err := netip.ParseAddr(host)
		return err == nil && ip.IsLoopback() && bracketed == ip.Is6()
	}
	if strings.EqualFold(host, "localhost") {
		return true
	}
	for _, a := range g.allowed {
		if strings.EqualFold(host, a) {
			return true
		}
	}
	return false
}

func (h *handler) serveSecret(w http.ResponseWriter, r *http.Request, name string) {
	if !validName(name) {
		h.m.errors.Add(1)
		writeAgentError(w, http.StatusBadRequest, "invalid_name", "name must be a secret name without empty, \".\" or \"..\" segments")
		return
	}
	var version, stage string
	if r.URL.RawQuery != "" {
		q, err := url.ParseQuery(r.URL.RawQuery)
		if err != nil {
			h.m.errors.Add(1)
			writeAgentError(w, http.StatusBadRequest, "invalid_query", "the query string is malformed")
			return
		}
		version, stage = q.Get("version"), q.Get("stage")
	}
	var buf [256]byte
	key := appendKey(buf[:0], name, version, stage)
	if e := h.c.lookup(name, key); e != nil && h.c.fresh(e, h.c.now()) {
		h.m.hits.Add(1)
		h.writeEntry(w, e, h.headers.hit)
		return
	}
	rep, err := h.c.fill(r.Context(), selector{name: name, version: version, stage: stage}, string(key))
	if err != nil {
		h.m.errors.Add(1)
		w.Header()["X-Coffer-Cache"] = h.headers.miss
		writeAgentError(w, http.StatusBadGateway, "server_unreachable", "the agent cannot reach the Coffer server and holds no value it may answer with")
		return
	}
	switch rep.result {
	case resultMiss:
		h.m.misses.Add(1)
		h.writeEntry(w, rep.e, h.headers.miss)
	case resultStale:
		h.m.stales.Add(1)
		w.Header().Set("X-Coffer-Stale-Seconds", strconv.FormatInt(int64(rep.age.Seconds()), 10))
		h.writeEntry(w, rep.e, h.headers.stale)
	default:
		h.m.errors.Add(1)
		hdr := w.Header()
		if rep.ans.ctype != "" {
			hdr.Set("Content-Type", rep.ans.ctype)
		}
		hdr["X-Coffer-Cache"] = h.headers.miss
		hdr["Cache-Control"] = h.headers.noStore
		w.WriteHeader(rep.ans.status)
		w.Write(rep.ans.body)
	}
}

func (h *handler) writeEntry(w http.ResponseWriter, e *entry, result []string) {
	hdr := w.Header()
	hdr["Content-Type"] = e.ctype
	hdr["Content-Length"] = e.clen
	hdr["Cache-Control"] = h.headers.noStore
	hdr["X-Coffer-Cache"] = result
	w.WriteHeader(http.StatusOK)
	w.Write(e.body)
}

// validName refuses what could make the agent's request to the server
// reach another path: empty, "." and ".." segments, and control
// characters. The server checks the rest of its naming rules.
func validName(name string) bool {
	if name == "" || len(name) > 1024 {
		return false
	}
	start := 0
	for i := 0; i <= len(name); i++ {
		if i == len(name) || name[i] == '/' {
			if seg := name[start:i]; seg == "" || seg == "." || seg == ".." {
				return false
			}
			start = i + 1
			continue
		}
		if c := name[i]; c < 0x20 || c == 0x7f || c == '?' || c == '#' {
			return false
		}
	}
	return true
}

func writeAgentJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(status)
	enc := json.NewEncoder(w)
	enc.SetEscapeHTML(false)
	enc.Encode(v)
}

// writeAgentError answers in the server's error shape, so clients handle
// the agent's own errors like the server's.
func writeAgentError(w http.ResponseWriter, status int, code, msg string) {
	writeAgentJSON(w, status, map[string]any{"error": map[string]string{"code": code, "message": msg}})
}
