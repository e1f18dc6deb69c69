package pgrepl

import (
	"context"
	"sync"
	"testing"
	"time"
)

// deadlines records what interruptOn sets.
type deadlines struct {
	mu  sync.Mutex
	set []time.Time
}

func (d *deadlines) setter(t time.Time) error {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.set = append(d.set, t)
	return nil
}

func (d *deadlines) last() (time.Time, int) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if len(d.set) == 0 {
		return time.Time{}, 0
	}
	return d.set[len(d.set)-1], len(d.set)
}

func TestWatchDeadline(t *testing.T) {
	// Not cancelled: nothing is set.
	var quiet deadlines
	_, release0 := watchDeadline(context.Background(), quiet.setter)
	release0()
	if _, n := quiet.last(); n != 0 {
		t.Fatalf("uncancelled: %d deadlines set", n)
	}
	// Cancelled: a past deadline at once, cleared on release.
	var d deadlines
	ctx, cancel := context.WithCancel(context.Background())
	_, release := watchDeadline(ctx, d.setter)
	cancel()
	for deadline := time.Now().Add(5 * time.Second); ; {
		if time.Now().After(deadline) {
			t.Fatal("cancel set no deadline")
		}
		if at, n := d.last(); n == 1 {
			if !at.Before(time.Now()) {
				t.Fatalf("cancel set %v, want a deadline in the past", at)
			}
			break
		}
		time.Sleep(time.Millisecond)
	}
	release()
	if at, n := d.last(); n != 2 || !at.IsZero() {
		t.Fatalf("after release: %d deadlines, last %v; want the deadline cleared", n, at)
	}
	// A cancellation racing the release never leaves a past deadline:
	// cancelled just before release, the callback has started but may
	// take the lock before or after release does; either way, once it
	// has run, the deadline is clear.
	for range 200 {
		var r deadlines
		ctx, cancel := context.WithCancel(context.Background())
		_, release := watchDeadline(ctx, r.setter)
		cancel()
		release()
		time.Sleep(time.Millisecond) // the callback has run by now
		if at, n := r.last(); n > 0 && !at.IsZero() {
			t.Fatalf("race: %d deadlines, last %v after release", n, at)
		}
	}
}
