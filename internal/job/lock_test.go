package job

import (
	"errors"
	"testing"
)

func TestLock(t *testing.T) {
	dir := t.TempDir()
	l, err := Acquire(dir, "daily")
	if err != nil {
		t.Fatal(err)
	}
	// flock locks belong to the open file description, so a second Acquire
	// in the same process conflicts just as another process would.
	if _, err := Acquire(dir, "daily"); !errors.Is(err, ErrBusy) {
		t.Fatalf("second acquire: %v, want ErrBusy", err)
	}
	if !Held(dir, "daily") {
		t.Fatal("Held = false while locked")
	}
	if _, err := Acquire(dir, "weekly"); err != nil {
		t.Fatalf("other config: %v", err)
	}
	l.Release()
	if Held(dir, "daily") {
		t.Fatal("Held = true after release")
	}
}
