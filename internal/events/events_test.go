package events

import (
	"testing"
)

func TestReadResumeAndGap(t *testing.T) {
	b := New(nil)
	for i := 0; i < 5; i++ {
		b.Publish(Event{Type: VersionCreated, Name: "a", Version: i + 1})
	}
	evs, gap, _, _ := b.Read(2, 100)
	if gap || len(evs) != 3 || evs[0].Seq != 3 || evs[2].Version != 5 {
		t.Fatalf("Read(2) = %+v gap=%v", evs, gap)
	}
	if evs, _, _, _ := b.Read(5, 100); len(evs) != 0 {
		t.Fatalf("Read(last) = %+v", evs)
	}
	for i := 0; i < Capacity; i++ {
		b.Publish(Event{Type: VersionCreated, Name: "b"})
	}
	evs, gap, _, _ = b.Read(1, 10)
	if !gap || evs[0].Seq != 6 {
		t.Fatalf("Read(old cursor) first=%d gap=%v, want 6 and a gap", evs[0].Seq, gap)
	}
}

func TestWakeAndClose(t *testing.T) {
	b := New(nil)
	_, _, more, _ := b.Read(0, 10)
	b.Publish(Event{Type: Deleted, Name: "x"})
	select {
	case <-more:
	default:
		t.Fatal("publish did not wake the reader")
	}
	_, _, more, _ = b.Read(1, 10)
	b.Close()
	<-more
	if _, _, _, closed := b.Read(1, 10); !closed {
		t.Fatal("bus not closed")
	}
}
