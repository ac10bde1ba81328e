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

// TestStartAtAcrossRestart: a subscriber holding an id from before a
// restart is told of a gap by the new bus, not left waiting for ids it
// already passed.
func TestStartAtAcrossRestart(t *testing.T) {
	old := New(nil)
	old.StartAt(1000)
	for i := 0; i < 3; i++ {
		old.Publish(Event{Type: VersionCreated, Name: "a"})
	}
	cursor := old.Last() // 1002
	restarted := New(nil)
	restarted.StartAt(5000) // a later start
	restarted.Publish(Event{Type: VersionCreated, Name: "b"})
	evs, gap, _, _ := restarted.Read(cursor, 10)
	if !gap || len(evs) != 1 || evs[0].Seq != 5000 {
		t.Fatalf("Read(%d) after restart = %+v gap=%v, want seq 5000 and a gap", cursor, evs, gap)
	}
	restarted.StartAt(10) // never goes back
	if restarted.Last() != 5000 {
		t.Fatalf("Last = %d", restarted.Last())
	}
}
