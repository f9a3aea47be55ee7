// Package localfs opens a local directory as a Go Cloud bucket for the
// files store: the embedded file backend. Only internal/server (and tests)
// import it; the files package works on any *blob.Bucket.
package localfs

import (
	"context"
	"fmt"
	"os"

	"gocloud.dev/blob"
	"gocloud.dev/blob/fileblob"
)

// Open opens the local directory dir as a bucket with the fileblob
// driver, creating it with mode 0700 if it does not exist. Subdirectories are
// created 0700, temporary files live next to their objects (atomic rename),
// and no metadata sidecar files are written. The caller closes the bucket.
func Open(ctx context.Context, dir string) (*blob.Bucket, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("create bucket directory: %w", err)
	}
	b, err := fileblob.OpenBucket(dir, &fileblob.Options{
		DirFileMode: 0o700,
		NoTempDir:   true,
		Metadata:    fileblob.MetadataDontWrite,
	})
	if err != nil {
		return nil, fmt.Errorf("open bucket %s: %w", dir, err)
	}
	return b, nil
}
