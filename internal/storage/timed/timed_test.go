package timed_test

import (
	"sync"
	"testing"
	"time"

	"github.com/coffer-dev/coffer/internal/storage"
	"github.com/coffer-dev/coffer/internal/storage/mem"
	"github.com/coffer-dev/coffer/internal/storage/storagetest"
	"github.com/coffer-dev/coffer/internal/storage/timed"
)

func TestConformance(t *testing.T) {
	var mu sync.Mutex
	ops := map[string]int{}
	storagetest.Run(t, func(t *testing.T) storage.Backend {
		return timed.Wrap(mem.New(), func(op string, d time.Duration) {
			mu.Lock()
			ops[op]++
			mu.Unlock()
		})
	})
	if ops["get"] == 0 || ops["list"] == 0 || ops["update"] == 0 {
		t.Fatalf("observed %v, want get, list and update", ops)
	}
	if _, ok := timed.Wrap(mem.New(), func(string, time.Duration) {}).(storage.Snapshotter); !ok {
		t.Fatal("wrapping a Snapshotter lost the capability")
	}
}
