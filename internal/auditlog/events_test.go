package auditlog

import (
	"context"
	"errors"
	"slices"
	"testing"
	"time"

	"github.com/idvault/idvault/internal/store"
)

// allEvents pages through Events with limit and returns the ids in order.
func allEvents(t *testing.T, l *Log, tenant string, flt Filter, limit int) []string {
	t.Helper()
	var ids []string
	cursor := ""
	for pages := 0; ; pages++ {
		evs, next, err := l.Events(context.Background(), tenant, flt, cursor, limit)
		if err != nil {
			t.Fatalf("Events(%+v, page %d) = %v", flt, pages, err)
		}
		if len(evs) > max(limit, 0) && limit > 0 {
			t.Fatalf("Events(limit %d) returned %d", limit, len(evs))
		}
		for _, e := range evs {
			ids = append(ids, e.ID)
		}
		if next == "" {
			return ids
		}
		cursor = next
	}
}

func TestEventsFilterAndPaginate(t *testing.T) {
	f := newFixture(t, Options{CheckpointEvery: 100})
	f.appendN(t, "t1", 0, 500, 70)
	// A late event: appended last, its time before all others.
	late := entry(t, "t1", 500)
	late.Time = baseTime.Add(-time.Hour)
	if _, err := f.log.Append(context.Background(), []Entry{late}); err != nil {
		t.Fatal(err)
	}
	all := append(entries(t, "t1", 0, 500), late)
	at := func(i int) time.Time { return baseTime.Add(time.Duration(i) * time.Second) }
	tests := []struct {
		name string
		flt  Filter
	}{
		{"no filter", Filter{}},
		{"action", Filter{Action: "file.read"}},
		{"outcome", Filter{Outcome: "denied"}},
		{"actor", Filter{ActorID: "user-3"}},
		{"resource type", Filter{ResourceType: "profile"}},
		{"resource", Filter{ResourceID: "res-2"}},
		{"resource and actor", Filter{ResourceID: "res-2", ActorID: "user-3"}},
		{"nothing matches", Filter{Action: "session.read", Outcome: "denied"}},
		{"time range", Filter{From: at(100), To: at(200)}},
		{"from", Filter{From: at(450)}},
		{"to, finds the late event", Filter{To: at(0)}},
		{"action in a time range", Filter{Action: "user.signin", From: at(10), To: at(30)}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var want []string
			for _, e := range all {
				lf := Leaf{ID: e.ID, Time: e.Time, Index: e.Index}
				if tc.flt.match(lf) {
					want = append(want, e.ID)
				}
			}
			for _, limit := range []int{7, 100, 0} {
				if got := allEvents(t, f.log, "t1", tc.flt, limit); !slices.Equal(got, want) {
					t.Fatalf("Events(%+v, limit %d) = %d events %v…, want %d", tc.flt, limit, len(got), got[:min(3, len(got))], len(want))
				}
			}
		})
	}
}

func TestEventsReturnsStoredEvent(t *testing.T) {
	f := newFixture(t, Options{})
	f.appendN(t, "t1", 0, 10, 10)
	evs, next, err := f.log.Events(context.Background(), "t1", Filter{ActorID: "user-3"}, "", 1)
	if err != nil || len(evs) != 1 || next == "" {
		t.Fatalf("Events() = %d events, next %q, %v; want 1 and a cursor", len(evs), next, err)
	}
	want := entry(t, "t1", 3)
	if got := evs[0]; got.Index != 3 || got.ID != want.ID || !got.Time.Equal(want.Time) || string(got.Data) != string(want.Data) {
		t.Fatalf("Events()[0] = %+v, want event 3 as appended", got)
	}
}

func TestEventsRejectsBadCursor(t *testing.T) {
	f := newFixture(t, Options{})
	for _, c := range []string{"x", "AQ", encodeCursor(1) + "A", "AoAAAAAAAAAA"} {
		if _, _, err := f.log.Events(context.Background(), "t1", Filter{}, c, 10); !errors.Is(err, store.ErrInvalid) {
			t.Errorf("Events(cursor %q) = %v, want ErrInvalid", c, err)
		}
	}
}
