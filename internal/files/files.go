package files

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"hash"
	"io"
	"math"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/minio/sio"
	"gocloud.dev/blob"
	"gocloud.dev/gcerrors"

	"github.com/idvault/idvault/internal/barrier"
)

// Sentinel errors. Check them with errors.Is.
var (
	// ErrInvalid means a Ref or an argument is malformed.
	ErrInvalid = errors.New("files: invalid argument")
	// ErrTooLarge means Put received more than maxBytes of plaintext.
	ErrTooLarge = errors.New("files: file too large")
	// ErrTampered means a stored object, or the Sealed metadata given for it,
	// does not match what Put recorded: the object was changed, truncated,
	// extended or replaced, or the metadata belongs to another file. The
	// wrapped error text says which check failed; it holds no file content.
	ErrTampered = errors.New("files: stored file failed verification")
	// ErrNotFound means no object exists for the Ref.
	ErrNotFound = errors.New("files: not found")
)

// Location is the top-level area of the bucket a file belongs to.
type Location string

// Locations.
const (
	Sessions  Location = "sessions"
	Persons   Location = "persons"
	Workflows Location = "workflows"
	Files     Location = "files"
	Tmp       Location = "tmp"
)

// Valid reports whether l is one of the declared locations.
func (l Location) Valid() bool {
	switch l {
	case Sessions, Persons, Workflows, Files, Tmp:
		return true
	}
	return false
}

// maxComponent is the longest tenant or id a Ref accepts.
const maxComponent = 128

// Ref names one stored file. Tenant and ID MUST be 1 to 128 characters from
// [A-Za-z0-9_.-], not starting with '.' and not containing "..", so that a
// Ref maps to exactly one object key on every backend and can never reach
// outside its location and tenant.
type Ref struct {
	Tenant   string
	Location Location
	ID       string
	// Scope names the data key that wraps the file key: a session id for
	// a session's files (shredding the session's key makes them
	// unreadable), empty for the tenant's key. It is not part of the
	// object key.
	Scope string
}

// Key returns the object key "<location>/<tenant>/<id>", or ErrInvalid.
func (r Ref) Key() (string, error) {
	if !r.Location.Valid() {
		return "", fmt.Errorf("%w: unknown location %q", ErrInvalid, r.Location)
	}
	if !validComponent(r.Tenant) {
		return "", fmt.Errorf("%w: bad tenant %q", ErrInvalid, r.Tenant)
	}
	if !validComponent(r.ID) {
		return "", fmt.Errorf("%w: bad id %q", ErrInvalid, r.ID)
	}
	return string(r.Location) + "/" + r.Tenant + "/" + r.ID, nil
}

func (r Ref) place() barrier.Place {
	return barrier.Place{Tenant: r.Tenant, Collection: "files:" + string(r.Location), ID: r.ID, Field: "key", Scope: r.Scope}
}

func validComponent(s string) bool {
	if s == "" || len(s) > maxComponent || s[0] == '.' {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case 'a' <= c && c <= 'z', 'A' <= c && c <= 'Z', '0' <= c && c <= '9', c == '_', c == '-':
		case c == '.':
			if i > 0 && s[i-1] == '.' {
				return false
			}
		default:
			return false
		}
	}
	return true
}

// Digest is a SHA-256 digest. Its text form (JSON, logs) is lowercase hex.
type Digest [sha256.Size]byte

// String returns d in lowercase hex.
func (d Digest) String() string { return hex.EncodeToString(d[:]) }

// MarshalText returns d in lowercase hex.
func (d Digest) MarshalText() ([]byte, error) { return []byte(d.String()), nil }

// UnmarshalText parses 64 hex digits.
func (d *Digest) UnmarshalText(text []byte) error {
	if hex.DecodedLen(len(text)) != len(d) {
		return fmt.Errorf("files: digest is %d hex digits, want %d", len(text), 2*len(d))
	}
	if _, err := hex.Decode(d[:], text); err != nil {
		return fmt.Errorf("files: digest: %w", err)
	}
	return nil
}

// Sealed is what Put records about a file and ReadAll needs to open it. The
// caller keeps it in the file's store record. None of it is secret: the file
// key inside WrappedKey is sealed by the barrier.
type Sealed struct {
	// Size is the plaintext length in bytes.
	Size int64 `json:"size"`
	// StoredSize is the length of the stored object in bytes.
	StoredSize int64 `json:"stored_size"`
	// PlainSHA256 is the SHA-256 of the plaintext.
	PlainSHA256 Digest `json:"plain_sha256"`
	// StoredSHA256 is the SHA-256 of the stored object.
	StoredSHA256 Digest `json:"stored_sha256"`
	// WrappedKey is the barrier-sealed file key, bound to the Ref and to
	// the four fields above.
	WrappedKey []byte `json:"wrapped_key"`
}

const (
	keyLen     = 32
	wrapV1     = 0x01
	wrapLen    = 1 + keyLen + 8 + 2*sha256.Size
	objectType = "application/octet-stream"
)

// sioConfig pins DARE 2.0 with AES-256-GCM for both directions.
func sioConfig(key []byte) sio.Config {
	return sio.Config{
		MinVersion:   sio.Version20,
		MaxVersion:   sio.Version20,
		CipherSuites: []byte{sio.AES_256_GCM},
		Key:          key,
	}
}

// Store keeps sealed files in a bucket. It is safe for concurrent use. It does
// not own the bucket; the caller closes it.
type Store struct {
	bucket  *blob.Bucket
	barrier barrier.Barrier
	// dir is the local directory that holds bucket's objects, or "" (see
	// LocalDir).
	dir string
}

// Option configures the Store that New makes.
type Option func(*Store)

// LocalDir tells New that bucket is the local directory dir, as opened by
// localfs.Open. Put then writes a new object straight into its file, and
// ReadAll reads it straight from there, rather than through the blob driver's
// temporary file, rename and metadata lookups: what the bucket stores, lists
// and deletes is the same. See "Atomicity and durability" in the package
// documentation.
func LocalDir(dir string) Option { return func(s *Store) { s.dir = dir } }

// New returns a Store over bucket that wraps file keys with b.
func New(bucket *blob.Bucket, b barrier.Barrier, opts ...Option) *Store {
	s := &Store{bucket: bucket, barrier: b}
	for _, o := range opts {
		o(s)
	}
	return s
}

// filePath returns the path of the file that holds the object key in the
// local directory, and false when the Store has none or when fileblob would
// escape key (it turns a "__0x" sequence into an escape of its own): such a
// key is stored and read through the bucket. The keys Ref.Key makes hold
// nothing else that fileblob escapes.
func (s *Store) filePath(key string) (string, bool) {
	if s.dir == "" || strings.Contains(key, "__0x") {
		return "", false
	}
	return filepath.Join(s.dir, filepath.FromSlash(key)), true
}

// Put encrypts the plaintext read from r until io.EOF and stores it at ref,
// replacing any object there. It reads at most maxBytes+1 bytes: a longer
// input fails with ErrTooLarge. On any error nothing new is visible in the
// bucket and an earlier object at ref is unchanged. maxBytes MUST NOT be
// negative. The returned Sealed is the only way to read the file back.
func (s *Store) Put(ctx context.Context, ref Ref, r io.Reader, maxBytes int64) (Sealed, error) {
	key, err := ref.Key()
	if err != nil {
		return Sealed{}, err
	}
	if maxBytes < 0 {
		return Sealed{}, fmt.Errorf("%w: negative maxBytes", ErrInvalid)
	}
	fileKey := make([]byte, keyLen)
	if _, err := rand.Read(fileKey); err != nil {
		return Sealed{}, fmt.Errorf("file key: %w", err)
	}
	if path, ok := s.filePath(key); ok {
		sealed, err := s.putFile(ctx, ref, key, path, fileKey, r, maxBytes)
		if !errors.Is(err, os.ErrExist) {
			return sealed, err
		}
		// An object is stored at ref already: replace it through the
		// bucket's rename, which keeps it whole until the new one is.
	}

	wctx, cancel := context.WithCancel(ctx)
	defer cancel()
	var tmp *os.File
	w, err := s.bucket.NewWriter(wctx, key, &blob.WriterOptions{
		ContentType: objectType,
		// The fileblob driver exposes its temporary file; Put syncs it
		// before the rename. Other drivers ignore this.
		BeforeWrite: func(as func(any) bool) error {
			as(&tmp)
			return nil
		},
	})
	if err != nil {
		return Sealed{}, fmt.Errorf("open writer: %w", err)
	}
	abort := func(err error) (Sealed, error) {
		cancel()
		_ = w.Close() // reports the cancellation; the write is discarded
		return Sealed{}, err
	}
	sealed, err := s.seal(ctx, ref, key, fileKey, w, r, maxBytes)
	if err != nil {
		return abort(err)
	}
	if tmp != nil {
		if err := tmp.Sync(); err != nil {
			return abort(fmt.Errorf("store %s: %w", key, err))
		}
	}
	if err := w.Close(); err != nil {
		return Sealed{}, fmt.Errorf("store %s: %w", key, err)
	}
	return sealed, nil
}

// putFile stores the new object key as the file path, created exclusively
// (mode 0600): an existing file fails with an error that is os.ErrExist,
// before r is read. The file is synced before putFile returns; on any error
// it is removed.
func (s *Store) putFile(ctx context.Context, ref Ref, key, path string, fileKey []byte, r io.Reader, maxBytes int64) (Sealed, error) {
	const flags = os.O_WRONLY | os.O_CREATE | os.O_EXCL
	f, err := os.OpenFile(path, flags, 0o600)
	if errors.Is(err, os.ErrNotExist) {
		if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
			return Sealed{}, fmt.Errorf("store %s: %w", key, err)
		}
		f, err = os.OpenFile(path, flags, 0o600)
	}
	if err != nil {
		return Sealed{}, fmt.Errorf("store %s: %w", key, err)
	}
	sealed, err := s.seal(ctx, ref, key, fileKey, ctxWriter{ctx: ctx, w: f}, r, maxBytes)
	if err == nil && ctx.Err() != nil {
		err = fmt.Errorf("store %s: %w", key, ctx.Err())
	}
	if err == nil {
		if err = f.Sync(); err != nil {
			err = fmt.Errorf("store %s: %w", key, err)
		}
	}
	if cerr := f.Close(); err == nil && cerr != nil {
		err = fmt.Errorf("store %s: %w", key, cerr)
	}
	if err != nil {
		_ = os.Remove(path)
		return Sealed{}, err
	}
	return sealed, nil
}

// seal encrypts the plaintext read from r (at most maxBytes) into w, the
// object key's writer, and returns its Sealed, with the file key fileKey
// wrapped.
func (s *Store) seal(ctx context.Context, ref Ref, key string, fileKey []byte, w io.Writer, r io.Reader, maxBytes int64) (Sealed, error) {
	stored := &countingHash{h: sha256.New()}
	enc, err := sio.EncryptWriter(io.MultiWriter(w, stored), sioConfig(fileKey))
	if err != nil {
		return Sealed{}, fmt.Errorf("encrypt: %w", err)
	}
	plain := sha256.New()
	limit := maxBytes
	if limit < math.MaxInt64 {
		limit++
	}
	n, err := io.Copy(io.MultiWriter(enc, plain), io.LimitReader(r, limit))
	if err != nil {
		return Sealed{}, fmt.Errorf("store %s: %w", key, err)
	}
	if n > maxBytes {
		return Sealed{}, fmt.Errorf("%w: more than %d bytes", ErrTooLarge, maxBytes)
	}
	if err := enc.Close(); err != nil {
		return Sealed{}, fmt.Errorf("store %s: %w", key, err)
	}
	sealed := Sealed{Size: n, StoredSize: stored.n}
	plain.Sum(sealed.PlainSHA256[:0])
	stored.h.Sum(sealed.StoredSHA256[:0])
	sealed.WrappedKey, err = s.barrier.Seal(ctx, ref.place(), wrapPayload(fileKey, sealed))
	if err != nil {
		return Sealed{}, fmt.Errorf("wrap file key: %w", err)
	}
	return sealed, nil
}

// ctxWriter fails its writes once ctx is done, as a blob writer does.
type ctxWriter struct {
	ctx context.Context
	w   io.Writer
}

func (c ctxWriter) Write(p []byte) (int, error) {
	if err := c.ctx.Err(); err != nil {
		return 0, err
	}
	return c.w.Write(p)
}

// ReadAll verifies the object at ref completely against sealed and returns its
// plaintext. No byte is returned unless every check passes: the object's
// size and SHA-256, DARE authentication of every package including the final
// one, and the plaintext's size and SHA-256. Any mismatch, and a wrapped key
// that does not open for ref, is ErrTampered; a missing object is
// ErrNotFound; a failing bucket or a done ctx is an I/O error that wraps the
// cause and is neither. ReadAll holds the whole plaintext in memory (files
// are bounded by Put's maxBytes) but never the whole stored object. The
// caller owns the returned slice.
func (s *Store) ReadAll(ctx context.Context, ref Ref, sealed Sealed) ([]byte, error) {
	key, err := ref.Key()
	if err != nil {
		return nil, err
	}
	if sealed.Size < 0 {
		return nil, fmt.Errorf("%w: negative size", ErrTampered)
	}
	want, err := sio.EncryptedSize(uint64(sealed.Size))
	if err != nil || want != uint64(sealed.StoredSize) {
		return nil, fmt.Errorf("%w: stored size does not fit plaintext size", ErrTampered)
	}
	payload, err := s.barrier.Open(ctx, ref.place(), sealed.WrappedKey)
	if err != nil {
		return nil, fmt.Errorf("%w: wrapped key does not open for this file", ErrTampered)
	}
	if len(payload) != wrapLen || payload[0] != wrapV1 ||
		subtle.ConstantTimeCompare(payload, wrapPayload(payload[1:1+keyLen], sealed)) != 1 {
		return nil, fmt.Errorf("%w: metadata does not match wrapped key", ErrTampered)
	}
	fileKey := payload[1 : 1+keyLen]

	r, size, err := s.open(ctx, key)
	if err != nil {
		return nil, err
	}
	defer func() { _ = r.Close() }()
	if size != sealed.StoredSize {
		return nil, fmt.Errorf("%w: stored object is %d bytes, want %d", ErrTampered, size, sealed.StoredSize)
	}

	// Only a failure of the bucket itself is an I/O error; every other
	// failure means the bytes arrived in full and are wrong.
	obj := &objectReader{r: io.LimitReader(r, sealed.StoredSize+1), done: ctx.Err}
	stored := &countingHash{h: sha256.New()}
	src := io.TeeReader(obj, stored)
	out := make([]byte, sealed.Size)
	var bad error
	// An empty file is an empty object, which sio's reader refuses as a
	// stream without a final package; the size and digest checks cover it.
	if sealed.Size > 0 {
		dec, err := sio.DecryptReader(src, sioConfig(fileKey))
		if err != nil {
			return nil, fmt.Errorf("decrypt: %w", err)
		}
		if _, err := io.ReadFull(dec, out); err != nil {
			bad = err
		} else if n, err := io.Copy(io.Discard, dec); err != nil {
			bad = err
		} else if n > 0 {
			bad = fmt.Errorf("plaintext longer than %d bytes", sealed.Size)
		}
	}
	// DARE stops at the final package; count what follows it.
	if bad == nil {
		_, bad = io.Copy(io.Discard, src)
	}
	if obj.err != nil {
		return nil, fmt.Errorf("read %s: %w", key, obj.err)
	}
	if bad != nil {
		return nil, fmt.Errorf("%w: %w", ErrTampered, bad)
	}
	var storedSum Digest
	stored.h.Sum(storedSum[:0])
	if stored.n != sealed.StoredSize || storedSum != sealed.StoredSHA256 {
		return nil, fmt.Errorf("%w: stored object digest mismatch", ErrTampered)
	}
	if Digest(sha256.Sum256(out)) != sealed.PlainSHA256 {
		return nil, fmt.Errorf("%w: plaintext digest mismatch", ErrTampered)
	}
	return out, nil
}

// open opens the object key for reading and returns its size: from its file
// in the local directory, or else from the bucket. A missing object is
// ErrNotFound.
func (s *Store) open(ctx context.Context, key string) (io.ReadCloser, int64, error) {
	if path, ok := s.filePath(key); ok {
		f, err := os.Open(path)
		if errors.Is(err, os.ErrNotExist) {
			return nil, 0, fmt.Errorf("%w: %s", ErrNotFound, key)
		}
		if err != nil {
			return nil, 0, fmt.Errorf("open %s: %w", key, err)
		}
		info, err := f.Stat()
		if err != nil {
			_ = f.Close()
			return nil, 0, fmt.Errorf("open %s: %w", key, err)
		}
		if !info.Mode().IsRegular() {
			// As fileblob: what is not a file is no object.
			_ = f.Close()
			return nil, 0, fmt.Errorf("%w: %s", ErrNotFound, key)
		}
		return f, info.Size(), nil
	}
	r, err := s.bucket.NewReader(ctx, key, nil)
	if err != nil {
		if gcerrors.Code(err) == gcerrors.NotFound {
			return nil, 0, fmt.Errorf("%w: %s", ErrNotFound, key)
		}
		return nil, 0, fmt.Errorf("open %s: %w", key, err)
	}
	return r, r.Size(), nil
}

// Exists reports whether an object is stored at ref. It does not verify it.
func (s *Store) Exists(ctx context.Context, ref Ref) (bool, error) {
	key, err := ref.Key()
	if err != nil {
		return false, err
	}
	ok, err := s.bucket.Exists(ctx, key)
	if err != nil {
		return false, fmt.Errorf("stat %s: %w", key, err)
	}
	return ok, nil
}

// Delete removes the object at ref, or returns ErrNotFound. To shred a file
// also delete its Sealed record: the wrapped key is the only copy of the
// file key.
func (s *Store) Delete(ctx context.Context, ref Ref) error {
	key, err := ref.Key()
	if err != nil {
		return err
	}
	if err := s.bucket.Delete(ctx, key); err != nil {
		if gcerrors.Code(err) == gcerrors.NotFound {
			return fmt.Errorf("%w: %s", ErrNotFound, key)
		}
		return fmt.Errorf("delete %s: %w", key, err)
	}
	return nil
}

// Rewrap re-seals the wrapped file key of sealed with the barrier as it
// seals now (for example after a migration from Fernet), and returns the new
// Sealed. The stored object is untouched. A wrapped key that fails to open
// is ErrTampered.
func (s *Store) Rewrap(ctx context.Context, ref Ref, sealed Sealed) (Sealed, error) {
	if _, err := ref.Key(); err != nil {
		return Sealed{}, err
	}
	payload, err := s.barrier.Open(ctx, ref.place(), sealed.WrappedKey)
	if err != nil {
		if errors.Is(err, barrier.ErrOpen) {
			return Sealed{}, fmt.Errorf("%w: file key does not open", ErrTampered)
		}
		return Sealed{}, err
	}
	defer clear(payload)
	out := sealed
	if out.WrappedKey, err = s.barrier.Seal(ctx, ref.place(), payload); err != nil {
		return Sealed{}, err
	}
	return out, nil
}

// Stale calls fn with the id of every object of tenant at loc last modified
// before cutoff, in key order, until fn returns an error. Ids include the
// names of temporary objects left by writes that never completed. It is the
// listing half of a sweep: the caller decides which ids are unreferenced and
// Deletes them.
func (s *Store) Stale(ctx context.Context, tenant string, loc Location, cutoff time.Time, fn func(id string) error) error {
	prefix, err := Ref{Tenant: tenant, Location: loc, ID: "x"}.Key()
	if err != nil {
		return err
	}
	prefix = strings.TrimSuffix(prefix, "x")
	it := s.bucket.List(&blob.ListOptions{Prefix: prefix, Delimiter: "/"})
	for {
		obj, err := it.Next(ctx)
		if errors.Is(err, io.EOF) {
			return nil
		}
		if err != nil {
			return fmt.Errorf("list %s: %w", prefix, err)
		}
		if obj.IsDir || !obj.ModTime.Before(cutoff) {
			continue
		}
		if err := fn(strings.TrimPrefix(obj.Key, prefix)); err != nil {
			return err
		}
	}
}

// wrapPayload returns the wrap format version 1 plaintext for fileKey and the
// sizes and digests of s.
func wrapPayload(fileKey []byte, s Sealed) []byte {
	p := make([]byte, 0, wrapLen)
	p = append(p, wrapV1)
	p = append(p, fileKey...)
	p = binary.BigEndian.AppendUint64(p, uint64(s.Size))
	p = append(p, s.PlainSHA256[:]...)
	return append(p, s.StoredSHA256[:]...)
}

// objectReader reads a stored object, stops once done reports an error (the
// context's Err: some drivers, fileblob among them, ignore a cancelled
// context while reading) and remembers the first error other than io.EOF.
type objectReader struct {
	r    io.Reader
	done func() error
	err  error
}

func (o *objectReader) Read(p []byte) (int, error) {
	if o.err != nil {
		return 0, o.err
	}
	if err := o.done(); err != nil {
		o.err = err
		return 0, err
	}
	n, err := o.r.Read(p)
	if err != nil && err != io.EOF {
		o.err = err
	}
	return n, err
}

// countingHash is a hash that also counts the bytes written to it.
type countingHash struct {
	h hash.Hash
	n int64
}

func (c *countingHash) Write(p []byte) (int, error) {
	c.n += int64(len(p))
	return c.h.Write(p)
}
