package files_test

import (
	"bytes"
	"context"
	"errors"
	"testing"

	"gocloud.dev/blob/memblob"

	"github.com/idvault/idvault/internal/barrier"
	"github.com/idvault/idvault/internal/files"
)

// FuzzReadAll feeds arbitrary bytes to the stream reader as the stored
// object of a recorded file: ReadAll never panics, and returns the
// plaintext only for the very object Put stored; anything else is
// ErrTampered.
func FuzzReadAll(f *testing.F) {
	ctx := context.Background()
	bar, err := barrier.NewAESGCM(make([]byte, 32))
	if err != nil {
		f.Fatal(err)
	}
	bucket := memblob.OpenBucket(nil)
	defer bucket.Close()
	store := files.New(bucket, bar)
	plain := bytes.Repeat([]byte("0123456789abcdef"), 5000) // two DARE packages
	sealed, err := store.Put(ctx, ref1, bytes.NewReader(plain), 1<<20)
	if err != nil {
		f.Fatal(err)
	}
	key, err := ref1.Key()
	if err != nil {
		f.Fatal(err)
	}
	stored, err := bucket.ReadAll(ctx, key)
	if err != nil {
		f.Fatal(err)
	}
	f.Add(stored)
	f.Add(stored[:len(stored)-1])
	f.Add(stored[:65536+32])
	f.Add([]byte{})
	f.Fuzz(func(t *testing.T, object []byte) {
		if err := bucket.WriteAll(ctx, key, object, nil); err != nil {
			t.Fatal(err)
		}
		got, err := store.ReadAll(ctx, ref1, sealed)
		if bytes.Equal(object, stored) {
			if err != nil || !bytes.Equal(got, plain) {
				t.Fatalf("ReadAll(the stored object) = %d bytes, %v", len(got), err)
			}
			return
		}
		if !errors.Is(err, files.ErrTampered) || got != nil {
			t.Fatalf("ReadAll(a forged object of %d bytes) = %d bytes, %v; want ErrTampered", len(object), len(got), err)
		}
	})
}
