package jwt

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"strings"
	"sync"
	"time"

	"github.com/go-jose/go-jose/v4"
)

// Remote key set timing.
const (
	// minRefetch is the least time between two fetches of a remote key
	// set, so that tokens naming unknown key IDs cannot make Coffer hammer
	// the issuer.
	minRefetch = 5 * time.Second
	// maxKeyAge is how long fetched keys are used before they are fetched
	// again, so that keys the issuer withdrew stop verifying. If that fetch
	// fails the old keys stay in use.
	maxKeyAge = time.Hour
	// maxDocSize bounds a discovery document or JWKS response.
	maxDocSize = 1 << 20
)

// errThrottled means a refetch was skipped because the last one was recent.
var errThrottled = errors.New("refetch throttled")

// verifier checks a token's signature for one stored Config. It is safe for
// concurrent use.
type verifier struct {
	issuer string                    // the iss tokens must carry
	algs   []jose.SignatureAlgorithm // accepted "alg" header values
	static []jose.JSONWebKey         // keys of jwks or public_keys
	remote *remoteKeys               // nil for static keys
}

// verify parses token, checks its algorithm and signature and returns the
// verified payload. Errors are reasons for fail, or ctx's error.
func (v *verifier) verify(ctx context.Context, token string) ([]byte, error) {
	jws, err := jose.ParseSignedCompact(token, v.algs)
	if err != nil {
		if _, ok := errors.AsType[*jose.ErrUnexpectedSignatureAlgorithm](err); ok {
			return nil, ErrAlgorithm
		}
		return nil, ErrMalformed
	}
	if len(jws.Signatures) != 1 {
		return nil, ErrMalformed
	}
	if v.remote != nil {
		return v.remote.verify(ctx, jws)
	}
	if payload, ok, _ := verifyWith(v.static, jws); ok {
		return payload, nil
	}
	return nil, ErrSignature
}

// verifyWith tries the keys that may have signed jws: those whose kid and alg
// do not contradict its header. kidKnown reports whether some key carries the
// header's (non-empty) kid, in which case refetching keys would not help.
func verifyWith(keys []jose.JSONWebKey, jws *jose.JSONWebSignature) (payload []byte, ok, kidKnown bool) {
	h := jws.Signatures[0].Header
	for _, k := range keys {
		if h.KeyID != "" && k.KeyID != "" && k.KeyID != h.KeyID {
			continue
		}
		kidKnown = kidKnown || h.KeyID != "" && k.KeyID == h.KeyID
		if k.Algorithm != "" && k.Algorithm != h.Algorithm {
			continue
		}
		if p, err := jws.Verify(k.Key); err == nil {
			return p, true, true
		}
	}
	return nil, false, kidKnown
}

// fetcher gets JSON documents over HTTP.
type fetcher struct {
	client *http.Client
	now    func() time.Time
	log    *slog.Logger
}

func (s *Service) fetcher() fetcher { return fetcher{client: s.client, now: s.now, log: s.log} }

// getJSON fetches url and decodes its JSON body into out. Errors name the
// URL and status but never echo the body.
func (f fetcher) getJSON(ctx context.Context, url string, out any) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return fmt.Errorf("fetch %s: %w", url, err)
	}
	req.Header.Set("Accept", "application/json")
	resp, err := f.client.Do(req)
	if err != nil {
		return fmt.Errorf("fetch %s: %w", url, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("fetch %s: status %d", url, resp.StatusCode)
	}
	body, err := io.ReadAll(io.LimitReader(resp.Body, maxDocSize+1))
	if err != nil {
		return fmt.Errorf("fetch %s: %w", url, err)
	}
	if len(body) > maxDocSize {
		return fmt.Errorf("fetch %s: response larger than %d bytes", url, maxDocSize)
	}
	if err := json.Unmarshal(body, out); err != nil {
		return fmt.Errorf("fetch %s: decode JSON: %w", url, err)
	}
	return nil
}

// remoteKeys is a key set fetched from a JWKS URL, found by OIDC discovery
// when issuer is set. Keys are fetched on first use, when a token names a key
// ID not cached, and when older than maxKeyAge; never more often than
// minRefetch, and one fetch at a time.
type remoteKeys struct {
	f      fetcher
	issuer string        // discovery issuer; "" when jwksURL was configured
	sem    chan struct{} // holds a token while a fetch runs

	mu        sync.Mutex // guards the fields below
	jwksURL   string     // "" until discovered
	keys      []jose.JSONWebKey
	fetched   time.Time // when keys were fetched; zero before the first success
	attempted time.Time // when the last fetch started
	attempts  uint64    // counts fetch attempts, to see whether one happened meanwhile
}

func newRemoteKeys(jwksURL string, f fetcher) *remoteKeys {
	return &remoteKeys{f: f, jwksURL: jwksURL, sem: make(chan struct{}, 1)}
}

func newDiscoveryKeys(issuer string, f fetcher) *remoteKeys {
	return &remoteKeys{f: f, issuer: issuer, sem: make(chan struct{}, 1)}
}

func (r *remoteKeys) snapshot() (keys []jose.JSONWebKey, fetched time.Time, attempts uint64) {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.keys, r.fetched, r.attempts
}

// verify checks jws against the cached keys, refetching them as described on
// remoteKeys.
func (r *remoteKeys) verify(ctx context.Context, jws *jose.JSONWebSignature) ([]byte, error) {
	keys, fetched, attempts := r.snapshot()
	fresh := !fetched.IsZero() && r.f.now().Sub(fetched) < maxKeyAge
	if fresh {
		payload, ok, kidKnown := verifyWith(keys, jws)
		if ok {
			return payload, nil
		}
		if kidKnown {
			return nil, ErrSignature
		}
	}
	if err := r.refresh(ctx, attempts); err != nil {
		if ctx.Err() != nil {
			return nil, ctx.Err()
		}
		if !errors.Is(err, errThrottled) {
			r.f.log.Warn("jwt: fetching issuer keys failed", slog.String("error", err.Error()))
		}
	}
	keys, fetched, _ = r.snapshot()
	if fetched.IsZero() {
		return nil, ErrKeysUnavailable
	}
	if payload, ok, _ := verifyWith(keys, jws); ok {
		return payload, nil
	}
	return nil, ErrSignature
}

// refresh fetches the key set (discovering its URL first if need be) unless
// a fetch was attempted since the caller saw seen attempts, or less than
// minRefetch ago. A failed fetch keeps the old keys.
func (r *remoteKeys) refresh(ctx context.Context, seen uint64) error {
	select {
	case r.sem <- struct{}{}:
	case <-ctx.Done():
		return ctx.Err()
	}
	defer func() { <-r.sem }()

	r.mu.Lock()
	now := r.f.now()
	switch {
	case r.attempts != seen:
		r.mu.Unlock()
		return nil // another login fetched while this one waited
	case !r.attempted.IsZero() && now.Sub(r.attempted) < minRefetch:
		r.mu.Unlock()
		return errThrottled
	}
	r.attempted = now
	r.attempts++
	jwksURL := r.jwksURL
	r.mu.Unlock()

	if jwksURL == "" {
		u, err := r.discover(ctx)
		if err != nil {
			return err
		}
		jwksURL = u
		r.mu.Lock()
		r.jwksURL = u
		r.mu.Unlock()
	}
	var doc json.RawMessage
	if err := r.f.getJSON(ctx, jwksURL, &doc); err != nil {
		return err
	}
	keys, err := parseJWKS(doc, false)
	if err != nil {
		return fmt.Errorf("fetch %s: %w", jwksURL, err)
	}
	r.mu.Lock()
	r.keys, r.fetched = keys, now
	r.mu.Unlock()
	return nil
}

// discover fetches the issuer's discovery document and returns its jwks_uri.
// The document must name exactly the configured issuer (OpenID Connect
// Discovery 1.0, section 4.3).
func (r *remoteKeys) discover(ctx context.Context) (string, error) {
	wellKnown := strings.TrimSuffix(r.issuer, "/") + "/.well-known/openid-configuration"
	var doc struct {
		Issuer  string `json:"issuer"`
		JWKSURI string `json:"jwks_uri"`
	}
	if err := r.f.getJSON(ctx, wellKnown, &doc); err != nil {
		return "", err
	}
	if doc.Issuer != r.issuer {
		return "", fmt.Errorf("discovery document of %s names another issuer", r.issuer)
	}
	if err := checkURL("jwks_uri", doc.JWKSURI); err != nil {
		return "", fmt.Errorf("discovery document of %s: %w", r.issuer, err)
	}
	return doc.JWKSURI, nil
}
