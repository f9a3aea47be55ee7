package session

import (
	"context"
	"errors"
	"fmt"
	"github.com/idvault/idvault/internal/store"

	"github.com/idvault/idvault/internal/files"
)

// ErrObjectsLeft means Destroy deleted the record and shredded the key but
// could not remove every stored object; they are unreadable, and the
// scheduler's sweep removes them.
var ErrObjectsLeft = errors.New("session: file objects left for the sweep")

// Shredder destroys a session's data key (keyring.Keyring).
type Shredder interface {
	Shred(ctx context.Context, tenant, scope string) error
}

// ObjectDeleter removes stored file objects (files.Store).
type ObjectDeleter interface {
	Delete(ctx context.Context, ref files.Ref) error
}

// Destroy deletes session s for good: the record goes (compare-and-swap on
// the version s was read at: store.ErrConflict if it changed), with its
// workflow run and its gateway call count, then the session's data key is
// shredded, so its record and files are unreadable even from a backup, then
// its stored objects are removed. A crash between the steps leaves only
// unreadable leftovers (and a gateway call count, a number), which the
// scheduler's sweep removes. Objects that cannot be removed are reported as
// ErrObjectsLeft; the record and the key are gone then.
func Destroy(ctx context.Context, repo *Repo, keys Shredder, objects ObjectDeleter, tenant string, s *Session) error {
	if err := repo.Delete(ctx, s); err != nil {
		return err
	}
	ctx = context.WithoutCancel(ctx)
	if err := repo.view.Delete(ctx, RunsCollection, s.ID, 0); err != nil && !errors.Is(err, store.ErrNotFound) {
		return fmt.Errorf("delete workflow run: %w", err)
	}
	if err := repo.view.Delete(ctx, GatewayCallsCollection, s.ID, 0); err != nil && !errors.Is(err, store.ErrNotFound) {
		return fmt.Errorf("delete gateway call count: %w", err)
	}
	if err := keys.Shred(ctx, tenant, s.ID); err != nil {
		return fmt.Errorf("shred session key: %w", err)
	}
	var errs []error
	for _, f := range s.Files {
		if err := objects.Delete(ctx, s.FileRef(tenant, f.ID)); err != nil && !errors.Is(err, files.ErrNotFound) {
			errs = append(errs, fmt.Errorf("delete file object %s: %w", f.ID, err))
		}
	}
	if len(errs) > 0 {
		return fmt.Errorf("%w: %w", ErrObjectsLeft, errors.Join(errs...))
	}
	return nil
}
