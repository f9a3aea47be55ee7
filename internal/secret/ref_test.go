package secret

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	"gopkg.in/yaml.v3"
)

func writeSecret(t *testing.T, content string, mode os.FileMode) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "secret")
	if err := os.WriteFile(path, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(path, mode); err != nil {
		t.Fatal(err)
	}
	return path
}

func TestResolve(t *testing.T) {
	t.Setenv("IDVAULT_SECRET_TEST_SET", "from-env")
	t.Setenv("IDVAULT_SECRET_TEST_EMPTY", "")
	dir := t.TempDir()
	fifo := filepath.Join(dir, "fifo")
	if err := syscall.Mkfifo(fifo, 0o600); err != nil {
		t.Fatal(err)
	}
	unreadable := writeSecret(t, "x", 0o000)

	tests := []struct {
		name    string
		ref     string
		want    string
		wantErr []error
	}{
		{name: "env", ref: "env:IDVAULT_SECRET_TEST_SET", want: "from-env"},
		{name: "env upper-case scheme", ref: "ENV:IDVAULT_SECRET_TEST_SET", want: "from-env"},
		{name: "env unset", ref: "env:IDVAULT_SECRET_TEST_UNSET", wantErr: []error{ErrNotFound}},
		{name: "env empty", ref: "env:IDVAULT_SECRET_TEST_EMPTY", wantErr: []error{ErrEmpty}},
		{name: "env no name", ref: "env:", wantErr: []error{ErrInvalidRef}},
		{name: "env bad name", ref: "env:1ABC", wantErr: []error{ErrInvalidRef}},
		{name: "env name with equals", ref: "env:A=B", wantErr: []error{ErrInvalidRef}},
		{name: "file", ref: "file:" + writeSecret(t, "from-file", 0o600), want: "from-file"},
		{name: "file group readable", ref: "file:" + writeSecret(t, "from-file", 0o440), want: "from-file"},
		{name: "file trailing newline", ref: "file:" + writeSecret(t, "line\n", 0o400), want: "line"},
		{name: "file trailing crlf", ref: "file:" + writeSecret(t, "line\r\n", 0o400), want: "line"},
		{name: "file only one newline trimmed", ref: "file:" + writeSecret(t, "line\n\n", 0o400), want: "line\n"},
		{name: "file inner newline kept", ref: "file:" + writeSecret(t, "a\nb", 0o400), want: "a\nb"},
		{name: "file empty", ref: "file:" + writeSecret(t, "", 0o600), wantErr: []error{ErrEmpty}},
		{name: "file newline only", ref: "file:" + writeSecret(t, "\n", 0o600), wantErr: []error{ErrEmpty}},
		{name: "file missing", ref: "file:" + filepath.Join(dir, "missing"), wantErr: []error{ErrNotFound, fs.ErrNotExist}},
		{name: "file world readable", ref: "file:" + writeSecret(t, "x", 0o644), wantErr: []error{ErrInsecureFile}},
		{name: "file world writable", ref: "file:" + writeSecret(t, "x", 0o602), wantErr: []error{ErrInsecureFile}},
		{name: "file others execute", ref: "file:" + writeSecret(t, "x", 0o601), wantErr: []error{ErrInsecureFile}},
		{name: "file relative", ref: "file:secret.key", wantErr: []error{ErrInvalidRef}},
		{name: "file no path", ref: "file:", wantErr: []error{ErrInvalidRef}},
		{name: "file directory", ref: "file:" + dir, wantErr: []error{ErrInvalidRef}},
		{name: "file fifo", ref: "file:" + fifo, wantErr: []error{ErrInvalidRef}},
		{name: "file too large", ref: "file:" + writeSecret(t, strings.Repeat("a", MaxFileBytes+1), 0o600), wantErr: []error{ErrTooLarge}},
		{name: "file at size limit", ref: "file:" + writeSecret(t, strings.Repeat("a", MaxFileBytes), 0o600), want: strings.Repeat("a", MaxFileBytes)},
		{name: "vault", ref: "vault:secret/data/idvault#rootKey", wantErr: []error{ErrUnsupportedScheme}},
		{name: "openbao", ref: "openbao:kv/root", wantErr: []error{ErrUnsupportedScheme}},
		{name: "empty", ref: "", wantErr: []error{ErrEmpty}},
		{name: "literal", ref: "plain-literal", want: "plain-literal"},
		{name: "literal with unknown scheme", ref: "https://example.com", want: "https://example.com"},
	}
	if os.Geteuid() != 0 {
		tests = append(tests, struct {
			name    string
			ref     string
			want    string
			wantErr []error
		}{name: "file unreadable", ref: "file:" + unreadable, wantErr: []error{fs.ErrPermission}})
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			v, err := Resolve(tt.ref)
			for _, want := range tt.wantErr {
				if !errors.Is(err, want) {
					t.Fatalf("Resolve(%q) error = %v, want %v", tt.ref, err, want)
				}
			}
			if len(tt.wantErr) == 0 && err != nil {
				t.Fatalf("Resolve(%q) error = %v, want nil", tt.ref, err)
			}
			if got := string(v.Bytes()); got != tt.want {
				t.Fatalf("Resolve(%q) = %q, want %q", tt.ref, got, tt.want)
			}
		})
	}
}

func TestResolveErrorWording(t *testing.T) {
	_, err := Resolve("vault:secret/x")
	if got, want := fmt.Sprint(err), `secret: scheme "vault" is not supported by this build`; got != want {
		t.Errorf("Resolve(vault:...) error = %q, want %q", got, want)
	}
	path := writeSecret(t, "x", 0o644)
	_, err = Resolve("file:" + path)
	if got := fmt.Sprint(err); !strings.Contains(got, path) || !strings.Contains(got, "0644") {
		t.Errorf("Resolve(world-readable file) error = %q, want it to name the path and the mode", got)
	}
}

func TestResolveErrorsHideContents(t *testing.T) {
	// A file that fails the checks must not have its content in the error.
	path := writeSecret(t, plaintext, 0o644)
	if _, err := Resolve("file:" + path); err == nil || strings.Contains(err.Error(), plaintext) {
		t.Fatalf("Resolve(world-readable file) error = %v, want an error without the content", err)
	}
}

func TestCheck(t *testing.T) {
	tests := []struct {
		ref     string
		wantErr error
	}{
		{"env:NAME", nil},
		{"file:/run/secrets/root.key", nil},
		{"literal", nil},
		{"", ErrEmpty},
		{"env:", ErrInvalidRef},
		{"env:A-B", ErrInvalidRef},
		{"file:relative/path", ErrInvalidRef},
		{"Vault:x", ErrUnsupportedScheme},
	}
	for _, tt := range tests {
		t.Run(tt.ref, func(t *testing.T) {
			if err := Check(tt.ref); !errors.Is(err, tt.wantErr) || (tt.wantErr == nil && err != nil) {
				t.Errorf("Check(%q) = %v, want %v", tt.ref, err, tt.wantErr)
			}
		})
	}
}

func TestIsLiteral(t *testing.T) {
	tests := []struct {
		ref  string
		want bool
	}{
		{"", false},
		{"env:NAME", false},
		{"ENV:NAME", false},
		{"file:/x", false},
		{"vault:x", false},
		{"openbao:x", false},
		{"hunter2", true},
		{"pass:word", true},
		{"https://example.com/key", true},
		{":leading-colon", true},
		{"env:", false},
		{"file:relative", false},
	}
	for _, tt := range tests {
		t.Run(tt.ref, func(t *testing.T) {
			if got := IsLiteral(tt.ref); got != tt.want {
				t.Errorf("IsLiteral(%q) = %v, want %v", tt.ref, got, tt.want)
			}
		})
	}
}

func TestRefRendering(t *testing.T) {
	tests := []struct {
		name string
		ref  Ref
		want string
	}{
		{"env reference shown", "env:ROOT_KEY", "env:ROOT_KEY"},
		{"file reference shown", "file:/run/secrets/k", "file:/run/secrets/k"},
		{"empty shown", "", ""},
		{"literal redacted", Ref(plaintext), "REDACTED"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := struct {
				Ref Ref `json:"ref" yaml:"ref"`
			}{tt.ref}
			var logBuf bytes.Buffer
			slog.New(slog.NewJSONHandler(&logBuf, nil)).Info("m", "ref", tt.ref)
			j, err := json.Marshal(h)
			if err != nil {
				t.Fatal(err)
			}
			y, err := yaml.Marshal(h)
			if err != nil {
				t.Fatal(err)
			}
			outputs := map[string]string{
				"%v":   fmt.Sprintf("%v", tt.ref),
				"%s":   fmt.Sprintf("%s", tt.ref),
				"%+v":  fmt.Sprintf("%+v", h),
				"%#v":  fmt.Sprintf("%#v", tt.ref),
				"%q":   fmt.Sprintf("%q", tt.ref),
				"json": string(j),
				"yaml": string(y),
				"slog": logBuf.String(),
			}
			for name, got := range outputs {
				if tt.ref.IsLiteral() && strings.Contains(got, plaintext) {
					t.Errorf("%s of literal = %q, contains the secret", name, got)
				}
				if !strings.Contains(got, tt.want) {
					t.Errorf("%s = %q, want it to contain %q", name, got, tt.want)
				}
			}
			if got := tt.ref.String(); got != tt.want {
				t.Errorf("String() = %q, want %q", got, tt.want)
			}
		})
	}
}

func TestRefResolve(t *testing.T) {
	t.Setenv("IDVAULT_SECRET_TEST_REF", "v")
	v, err := Ref("env:IDVAULT_SECRET_TEST_REF").Resolve()
	if err != nil || string(v.Bytes()) != "v" {
		t.Fatalf("Ref.Resolve() = %q, %v, want %q, nil", v.Bytes(), err, "v")
	}
}

func FuzzParse(f *testing.F) {
	for _, s := range []string{"", "env:A", "env:", "ENV:a_1", "file:/x", "file:x", "vault:a", "a:b", "literal", ":", "file:/\x00", "env:A=B"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		r, err := parse(s)
		if err != nil {
			if IsLiteral(s) {
				t.Fatalf("IsLiteral(%q) = true for a reference that does not parse: %v", s, err)
			}
			if Check(s) == nil {
				t.Fatalf("Check(%q) = nil, parse error %v", s, err)
			}
			return
		}
		switch r.kind {
		case kindLiteral:
			if r.target != s || !IsLiteral(s) {
				t.Fatalf("parse(%q) = literal %q, IsLiteral %v", s, r.target, IsLiteral(s))
			}
			if got := Ref(s).String(); got != "REDACTED" {
				t.Fatalf("Ref(%q).String() = %q, want REDACTED", s, got)
			}
		case kindEnv:
			if !validEnvName(r.target) || !strings.HasSuffix(s, ":"+r.target) {
				t.Fatalf("parse(%q) = env %q", s, r.target)
			}
			// Env look-ups have no side effects, so resolve these too.
			if _, err := Resolve(s); err != nil && !errors.Is(err, ErrNotFound) && !errors.Is(err, ErrEmpty) {
				t.Fatalf("Resolve(%q) error = %v", s, err)
			}
		case kindFile:
			if !filepath.IsAbs(r.target) || !strings.HasSuffix(s, ":"+r.target) {
				t.Fatalf("parse(%q) = file %q", s, r.target)
			}
		}
		if r.kind != kindLiteral && Ref(s).String() != s {
			t.Fatalf("Ref(%q).String() = %q, want the reference itself", s, Ref(s).String())
		}
	})
}
