package groupcommit

import (
	"testing"
	"time"
)

// The linger is long: a batch that returned only because it ran out would
// make the test slow, not flaky.

func TestGather(t *testing.T) {
	q := make(chan int, 16)
	stop := make(chan struct{})
	g := &Gatherer[int]{Queue: q, Max: 4, Linger: time.Minute}

	q <- 1 // a lone writer is not kept waiting (or this would take a minute)
	if b, ok := g.Next(stop); !ok || len(b) != 1 || b[0] != 1 {
		t.Fatalf("first batch = %v %v", b, ok)
	}
	for i := 2; i <= 7; i++ {
		q <- i
	}
	if b, _ := g.Next(stop); len(b) != 4 || b[0] != 2 || b[3] != 5 {
		t.Fatalf("second batch = %v, want 2..5 (Max 4)", b)
	}
	// The last batch held 4: the next waits for 4 although 2 are queued.
	go func() { q <- 8; q <- 9 }()
	if b, _ := g.Next(stop); len(b) != 4 || b[0] != 6 || b[3] != 9 {
		t.Fatalf("third batch = %v, want 6 7 8 9", b)
	}
	close(stop)
	if _, ok := g.Next(stop); ok {
		t.Fatal("Next after stop")
	}
}
