//go:build linux

package main

import (
	"context"
	"net/http"
	"net/http/httptest"
	"os"
	"strings"
	"testing"
	"time"
)

// These tests check the harness's helpers only; they time nothing.

func TestPercentile(t *testing.T) {
	var lat []time.Duration
	for i := 1; i <= 100; i++ {
		lat = append(lat, time.Duration(i))
	}
	for _, c := range []struct {
		p    float64
		want time.Duration
	}{{0.5, 50}, {0.99, 99}, {1, 100}, {0, 1}} {
		if got := percentile(lat, c.p); got != c.want {
			t.Errorf("percentile(%v) = %v, want %v", c.p, got, c.want)
		}
	}
	if got := percentile(nil, 0.99); got != 0 {
		t.Errorf("percentile of nothing = %v", got)
	}
}

func TestSendNon2xxIsAnErrorWithItsBody(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Header.Get("X-Coffer-Token") != "tok" || r.Header.Get("Content-Type") != "application/json" {
			http.Error(w, "missing headers", http.StatusBadRequest)
			return
		}
		http.Error(w, `{"error":"denied"}`, http.StatusForbidden)
	}))
	defer srv.Close()
	tg := target{method: "PUT", token: "tok", body: writeBody}
	err := send(context.Background(), srv.Client(), &tg, srv.URL+"/x")
	if err == nil || !strings.Contains(err.Error(), "403") || !strings.Contains(err.Error(), "denied") {
		t.Fatalf("send = %v, want a 403 error with the body", err)
	}
}

func TestProcReaders(t *testing.T) {
	if _, err := cpuTimes(os.Getpid()); err != nil {
		t.Fatal(err)
	}
	if m, err := readMemory(os.Getpid()); err != nil || m.RSS <= 0 || m.Anon <= 0 || m.File <= 0 {
		t.Fatalf("readMemory = %+v, %v", m, err)
	}
	if busy, total, err := hostCPU(); err != nil || busy <= 0 || total < busy {
		t.Fatalf("hostCPU = %d, %d, %v", busy, total, err)
	}
}

func TestWriteTargetNamesAreUnique(t *testing.T) {
	tg := writeTarget(&proc{url: "http://h"}, "tok", 32)
	seen := map[string]bool{}
	for w := range 12 {
		for i := range 12 {
			u := tg.url(w, i)
			if seen[u] {
				t.Fatalf("duplicate name %s", u)
			}
			seen[u] = true
		}
	}
}
