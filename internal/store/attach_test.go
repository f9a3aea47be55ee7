package store_test

import (
	"context"
	"errors"
	"testing"

	"github.com/idvault/idvault/internal/queue"
	"github.com/idvault/idvault/internal/store"
	"github.com/idvault/idvault/internal/testenv"
)

// side returns a make function that attaches one record of collection
// "side" named after the main write's id and tag.
func side(t *testing.T, v *store.View, tag string) func(store.Write) ([]store.Write, error) {
	return func(main store.Write) ([]store.Write, error) {
		w, err := v.Sealed(context.Background(), store.OpPut, "side", main.Record.ID+"-"+tag, 0, nil, map[string]string{"of": main.Record.ID})
		if err != nil {
			t.Errorf("Sealed() = %v", err)
		}
		return []store.Write{w}, err
	}
}

func exists(t *testing.T, v *store.View, collection, id string) bool {
	t.Helper()
	var out map[string]string
	_, err := v.Get(context.Background(), collection, id, &out)
	if err != nil && !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("Get(%s/%s) = %v", collection, id, err)
	}
	return err == nil
}

// TestAttachNested: a write carries every pending attachment of its
// context that matches its collection, in one batch; a failed write
// carries none, and the retry carries them all.
func TestAttachNested(t *testing.T) {
	env := testenv.Open(t, queue.Options{})
	ctx := context.Background()
	v, err := store.NewView(env.Backend, env.Barrier, "acme")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := v.Put(ctx, "things", "taken", nil, map[string]string{}); err != nil {
		t.Fatal(err)
	}

	actx, outer := store.Attach(ctx, "things", side(t, v, "outer"))
	actx, anyColl := store.Attach(actx, "", side(t, v, "any"))
	actx, other := store.Attach(actx, "elsewhere", side(t, v, "other"))

	// A create that conflicts writes nothing, not even the attachments.
	if _, err := v.Put(actx, "things", "taken", nil, map[string]string{}); !errors.Is(err, store.ErrConflict) {
		t.Fatalf("Put(taken) = %v, want ErrConflict", err)
	}
	for _, id := range []string{"taken-outer", "taken-any", "taken-other"} {
		if exists(t, v, "side", id) {
			t.Errorf("%s written by a failed write", id)
		}
	}

	if _, err := v.Put(actx, "things", "new", nil, map[string]string{}); err != nil {
		t.Fatalf("Put(new) = %v", err)
	}
	for id, want := range map[string]bool{"new-outer": true, "new-any": true, "new-other": false} {
		if got := exists(t, v, "side", id); got != want {
			t.Errorf("side record %s exists = %v, want %v", id, got, want)
		}
	}

	// Carried once: a second write carries nothing more, and Commit of a
	// carried attachment writes nothing.
	if _, err := v.Put(actx, "things", "second", nil, map[string]string{}); err != nil {
		t.Fatal(err)
	}
	if exists(t, v, "side", "second-outer") || exists(t, v, "side", "second-any") {
		t.Error("an attachment was carried twice")
	}
	for _, a := range []*store.Attached{outer, anyColl} {
		if err := a.Commit(ctx, env.Backend); err != nil {
			t.Errorf("Commit(carried) = %v", err)
		}
	}

	// The attachment of another collection is still pending.
	if err := other.Commit(ctx, env.Backend); err != nil {
		t.Fatalf("Commit(other) = %v", err)
	}
	if !exists(t, v, "side", "-other") {
		t.Error("Commit did not write the pending attachment")
	}
}
