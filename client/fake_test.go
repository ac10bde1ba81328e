package client_test

import (
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"sync"
	"testing"

	"github.com/coffer-dev/coffer/client"
)

// fakeServer serves text secrets from memory, enough of the API for the
// cache and Watch: GET and PUT /v1/secrets/{name}.
type fakeServer struct {
	srv *httptest.Server

	mu sync.Mutex
	// secrets holds each name's versions, oldest first. Guarded by mu.
	secrets map[string][]string
	// gets counts GETs per name. Guarded by mu.
	gets map[string]int
	// fail is how many of the next GETs answer 500. Guarded by mu.
	fail int
}

func newFakeServer(t testing.TB) *fakeServer {
	t.Helper()
	f := &fakeServer{secrets: map[string][]string{}, gets: map[string]int{}}
	mux := http.NewServeMux()
	mux.HandleFunc("GET /v1/secrets/{name...}", f.get)
	mux.HandleFunc("PUT /v1/secrets/{name...}", f.put)
	f.srv = httptest.NewServer(mux)
	t.Cleanup(f.srv.Close)
	return f
}

// client returns a client of f with cfg's other settings.
func (f *fakeServer) client(t testing.TB, cfg client.Config) *client.Client {
	t.Helper()
	cfg.Address = f.srv.URL
	c, err := client.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func (f *fakeServer) set(name, value string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.secrets[name] = append(f.secrets[name], value)
}

func (f *fakeServer) getCount(name string) int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.gets[name]
}

func (f *fakeServer) failNext(n int) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.fail = n
}

func writeErr(w http.ResponseWriter, status int, code string) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	json.NewEncoder(w).Encode(map[string]any{"error": map[string]string{"code": code, "message": code}})
}

func (f *fakeServer) get(w http.ResponseWriter, r *http.Request) {
	f.mu.Lock()
	defer f.mu.Unlock()
	name := r.PathValue("name")
	f.gets[name]++
	if f.fail > 0 {
		f.fail--
		writeErr(w, http.StatusInternalServerError, "internal")
		return
	}
	vs := f.secrets[name]
	if len(vs) == 0 {
		writeErr(w, http.StatusNotFound, "not_found")
		return
	}
	n := len(vs)
	if q := r.URL.Query().Get("version"); q != "" {
		if q != "1" { // enough for these tests
			writeErr(w, http.StatusNotFound, "version_not_found")
			return
		}
		n = 1
	}
	json.NewEncoder(w).Encode(map[string]any{"name": name, "version": n, "stages": []string{"current"}, "type": "text", "value": vs[n-1]})
}

func (f *fakeServer) put(w http.ResponseWriter, r *http.Request) {
	var in struct {
		Value string `json:"value"`
	}
	json.NewDecoder(r.Body).Decode(&in)
	name := r.PathValue("name")
	f.set(name, in.Value)
	f.mu.Lock()
	defer f.mu.Unlock()
	json.NewEncoder(w).Encode(map[string]any{"name": name, "version": len(f.secrets[name]), "stages": []string{"current"}})
}
