package secret

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"strconv"
	"strings"
)

// MaxFileBytes is the largest secret file Resolve reads.
const MaxFileBytes = 64 << 10

// Sentinel errors returned by Resolve and Check; test with errors.Is.
var (
	// ErrInvalidRef means a reference is malformed: an env: reference
	// without a valid variable name, a file: reference without an absolute
	// path, or a file: reference to something other than a regular file.
	ErrInvalidRef = errors.New("secret: invalid reference")
	// ErrUnsupportedScheme means a reference uses a reserved scheme (vault,
	// openbao) that this build cannot resolve.
	ErrUnsupportedScheme = errors.New("secret: unsupported scheme")
	// ErrNotFound means the environment variable is not set or the file
	// does not exist. A missing file also matches fs.ErrNotExist.
	ErrNotFound = errors.New("secret: not found")
	// ErrEmpty means the reference, the variable or the file is empty.
	ErrEmpty = errors.New("secret: empty")
	// ErrInsecureFile means the file grants permissions to others.
	ErrInsecureFile = errors.New("secret: file is accessible to others")
	// ErrTooLarge means the file is larger than MaxFileBytes.
	ErrTooLarge = errors.New("secret: file too large")
)

// unsupportedError reports a reserved scheme; it matches ErrUnsupportedScheme.
type unsupportedError struct{ scheme string }

func (e unsupportedError) Error() string {
	return fmt.Sprintf("secret: scheme %q is not supported by this build", e.scheme)
}

func (e unsupportedError) Is(target error) bool { return target == ErrUnsupportedScheme }

type kind int

const (
	kindLiteral kind = iota
	kindEnv
	kindFile
)

// ref is a parsed reference. For a literal, target is the secret itself.
type ref struct {
	kind   kind
	target string
}

// reserved lists the schemes that later builds resolve; this one refuses
// them instead of treating them as literals.
var reserved = map[string]bool{"vault": true, "openbao": true}

// parse splits a reference into its kind and target without any I/O.
func parse(s string) (ref, error) {
	if s == "" {
		return ref{}, fmt.Errorf("%w: no reference given", ErrEmpty)
	}
	scheme, target, ok := strings.Cut(s, ":")
	if !ok {
		return ref{kind: kindLiteral, target: s}, nil
	}
	switch scheme = strings.ToLower(scheme); {
	case scheme == "env":
		if !validEnvName(target) {
			return ref{}, fmt.Errorf("%w: env:%s: variable name must match [A-Za-z_][A-Za-z0-9_]*", ErrInvalidRef, target)
		}
		return ref{kind: kindEnv, target: target}, nil
	case scheme == "file":
		if !filepath.IsAbs(target) || strings.IndexByte(target, 0) >= 0 {
			return ref{}, fmt.Errorf("%w: file:%s: path must be absolute", ErrInvalidRef, target)
		}
		return ref{kind: kindFile, target: target}, nil
	case reserved[scheme]:
		return ref{}, unsupportedError{scheme: scheme}
	default:
		return ref{kind: kindLiteral, target: s}, nil
	}
}

func validEnvName(s string) bool {
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case c == '_', 'A' <= c && c <= 'Z', 'a' <= c && c <= 'z':
		case '0' <= c && c <= '9' && i > 0:
		default:
			return false
		}
	}
	return true
}

// IsLiteral reports whether ref is a non-empty literal secret rather than a
// reference: it has no colon, or its prefix is not a known or reserved
// scheme. Production configuration MUST NOT accept literals.
func IsLiteral(ref string) bool {
	r, err := parse(ref)
	return err == nil && r.kind == kindLiteral
}

// Check reports whether ref is well formed and resolvable by this build,
// without reading the environment or the file system. It returns nil for a
// literal.
func Check(ref string) error {
	_, err := parse(ref)
	return err
}

// Resolve returns the secret that ref names, as described in the package
// documentation. Errors name the variable or file but never include secret
// bytes. Resolve reads the process environment and the file system; it is
// safe for concurrent use.
func Resolve(ref string) (Value, error) {
	r, err := parse(ref)
	if err != nil {
		return Value{}, err
	}
	switch r.kind {
	case kindEnv:
		v, ok := os.LookupEnv(r.target)
		if !ok {
			return Value{}, fmt.Errorf("%w: environment variable %s is not set", ErrNotFound, r.target)
		}
		if v == "" {
			return Value{}, fmt.Errorf("%w: environment variable %s is empty", ErrEmpty, r.target)
		}
		return New([]byte(v)), nil
	case kindFile:
		return readFile(r.target)
	default:
		return New([]byte(r.target)), nil
	}
}

// readFile reads a secret file after checking that it is a small regular
// file that grants others no permissions. The path is checked before it is
// opened, so that a FIFO cannot block the open, and the open file is checked
// again, so that a swap between the two checks is caught.
func readFile(path string) (Value, error) {
	fi, err := os.Stat(path)
	if err != nil {
		return Value{}, fileError(err)
	}
	if err := checkMode(path, fi); err != nil {
		return Value{}, err
	}
	f, err := os.Open(path)
	if err != nil {
		return Value{}, fileError(err)
	}
	defer f.Close()
	fi, err = f.Stat()
	if err != nil {
		return Value{}, fileError(err)
	}
	if err := checkMode(path, fi); err != nil {
		return Value{}, err
	}
	b, err := io.ReadAll(io.LimitReader(f, MaxFileBytes+1))
	defer clear(b)
	if err != nil {
		return Value{}, fileError(err)
	}
	if len(b) > MaxFileBytes {
		return Value{}, fmt.Errorf("%w: %s is larger than %d bytes", ErrTooLarge, path, MaxFileBytes)
	}
	if t, ok := bytes.CutSuffix(b, []byte("\n")); ok {
		b = bytes.TrimSuffix(t, []byte("\r"))
	}
	if len(b) == 0 {
		return Value{}, fmt.Errorf("%w: file %s is empty", ErrEmpty, path)
	}
	return New(b), nil
}

func fileError(err error) error {
	if errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("%w: %w", ErrNotFound, err)
	}
	return fmt.Errorf("secret: %w", err)
}

func checkMode(path string, fi fs.FileInfo) error {
	if !fi.Mode().IsRegular() {
		return fmt.Errorf("%w: file:%s is not a regular file", ErrInvalidRef, path)
	}
	if perm := fi.Mode().Perm(); perm&0o007 != 0 {
		return fmt.Errorf("%w: %s has mode %#o; remove the permissions for others (chmod o-rwx)", ErrInsecureFile, path, perm)
	}
	return nil
}

// Ref is a secret reference as it appears in configuration. It renders as
// itself when it is a reference (env:NAME, file:/path are not secrets) and
// as "REDACTED" when it is a literal, through fmt, log/slog, encoding/json,
// encoding.TextMarshaler and gopkg.in/yaml.v3 alike. Convert it with
// string(r) only to resolve it.
//
// Unlike Value, a Ref is a plain string underneath: fmt prints a Ref held in
// an unexported struct field, where it cannot call methods, as it is. Keep
// Refs in exported fields, as configuration structs do.
type Ref string

// Resolve is Resolve(string(r)).
func (r Ref) Resolve() (Value, error) { return Resolve(string(r)) }

// IsLiteral is IsLiteral(string(r)).
func (r Ref) IsLiteral() bool { return IsLiteral(string(r)) }

// String returns r, or "REDACTED" if r is a literal.
func (r Ref) String() string {
	if r.IsLiteral() {
		return redacted
	}
	return string(r)
}

// GoString returns String quoted.
func (r Ref) GoString() string { return strconv.Quote(r.String()) }

// Format writes String (quoted for %q, GoString for %#v).
func (r Ref) Format(f fmt.State, verb rune) {
	s := r.String()
	switch {
	case verb == 'q', verb == 'v' && f.Flag('#'):
		s = strconv.Quote(s)
	}
	_, _ = io.WriteString(f, s)
}

// LogValue returns String as a slog string value.
func (r Ref) LogValue() slog.Value { return slog.StringValue(r.String()) }

// MarshalText returns String; encoding/json and yaml.v3 both use it.
func (r Ref) MarshalText() ([]byte, error) { return []byte(r.String()), nil }
