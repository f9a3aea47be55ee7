package groupcommit_test

import (
	"errors"
	"runtime"
	"sync"
	"testing"

	"github.com/idvault/idvault/internal/groupcommit"
)

// TestEveryItemCommittedOnce runs many concurrent callers and checks that each
// item is committed exactly once, that no batch exceeds the maximum, and that
// callers share commits.
func TestEveryItemCommittedOnce(t *testing.T) {
	const callers, max = 200, 16
	var (
		mu      sync.Mutex
		seen    = map[int]int{}
		batches int
		c       *groupcommit.Committer[int]
		first   = true
		lead    int // items of the first commit
	)
	c = groupcommit.New(max, func(items []int) error {
		mu.Lock()
		wait := first
		if first {
			lead = len(items)
		}
		first = false
		mu.Unlock()
		for wait && c.Queued() < callers-len(items) { // hold the first commit until every other caller has queued
			runtime.Gosched()
		}
		mu.Lock()
		defer mu.Unlock()
		if len(items) > max {
			t.Errorf("batch of %d items, max %d", len(items), max)
		}
		batches++
		for _, it := range items {
			seen[it]++
		}
		return nil
	})
	var wg sync.WaitGroup
	for i := range callers {
		wg.Go(func() {
			if err := c.Do(i); err != nil {
				t.Errorf("Do(%d) = %v, want nil", i, err)
			}
		})
	}
	wg.Wait()
	for i := range callers {
		if seen[i] != 1 {
			t.Errorf("item %d committed %d times, want 1", i, seen[i])
		}
	}
	if want := 1 + (callers-lead+max-1)/max; batches != want {
		t.Errorf("%d commits for %d callers queued behind one, want %d: full batches of %d", batches, callers, want, max)
	}
}

// TestErrorReachesEveryCallerOfTheBatch checks that a failed commit fails
// exactly the calls whose items it held.
func TestErrorReachesEveryCallerOfTheBatch(t *testing.T) {
	boom := errors.New("boom")
	c := groupcommit.New(0, func(items []string) error {
		for _, it := range items {
			if it == "bad" {
				return boom
			}
		}
		return nil
	})
	if err := c.Do("bad"); !errors.Is(err, boom) {
		t.Errorf("Do(bad) = %v, want %v", err, boom)
	}
	if err := c.Do("good"); err != nil {
		t.Errorf("Do(good) after a failed commit = %v, want nil", err)
	}
}
