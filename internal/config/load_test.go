package config

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/idvault/idvault/internal/secret"
)

func writeConfig(t testing.TB, content string) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "idvault.yaml")
	if err := os.WriteFile(path, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

func TestDefault(t *testing.T) {
	c := Default()
	if err := c.Validate(); err != nil {
		t.Fatalf("Default().Validate() = %v, want nil", err)
	}
	loaded, err := Load("", nil)
	if err != nil {
		t.Fatalf("Load(\"\", nil) error = %v", err)
	}
	if !reflect.DeepEqual(loaded, c) {
		t.Fatalf("Load(\"\", nil) = %+v, want Default() %+v", loaded, c)
	}
	checks := []struct {
		name      string
		got, want any
	}{
		{"mode", c.Mode, ModeDev},
		{"dataDir", c.DataDir, "./data"},
		{"roles", c.Roles, AllRoles()},
		{"store.sqlite.path", c.Store.SQLite.Path, filepath.Join("data", "idvault.db")},
		{"blob.file.dir", c.Blob.File.Dir, filepath.Join("data", "files")},
		{"api.publicURL", c.API.PublicURL, "https://127.0.0.1:8443"},
		{"DevTLSDir", c.DevTLSDir(), filepath.Join("data", "tls")},
		{"DevRootKeyPath", c.DevRootKeyPath(), filepath.Join("data", "keys", "root.key")},
		{"queue.maxRetryBackoff", c.Queue.MaxRetryBackoff, 5 * time.Minute},
		{"sessions.maxTTL", c.Sessions.MaxTTL, 720 * time.Hour},
	}
	for _, tt := range checks {
		if !reflect.DeepEqual(tt.got, tt.want) {
			t.Errorf("Default() %s = %v, want %v", tt.name, tt.got, tt.want)
		}
	}
	// Each call returns a fresh value.
	c.Roles[0] = "changed"
	if Default().Roles[0] != RoleAPI {
		t.Errorf("Default() shares Roles between calls")
	}
}

func TestLoadPrecedence(t *testing.T) {
	path := writeConfig(t, `
dataDir: /srv/idvault
api:
  listen: 0.0.0.0:9443
  readTimeout: 45s
queue:
  maxAttempts: 3
`)
	c, err := Load(path, []string{
		"IDVAULT_API__LISTEN=127.0.0.1:7443",
		"IDVAULT_LOG__LEVEL=debug",
	})
	if err != nil {
		t.Fatalf("Load() error = %v", err)
	}
	checks := []struct {
		name      string
		got, want any
	}{
		{"api.listen from env over file", c.API.Listen, "127.0.0.1:7443"},
		{"api.readTimeout from file", c.API.ReadTimeout, 45 * time.Second},
		{"queue.maxAttempts from file", c.Queue.MaxAttempts, 3},
		{"log.level from env", c.Log.Level, "debug"},
		{"log.format default", c.Log.Format, "json"},
		{"api.writeTimeout default", c.API.WriteTimeout, 60 * time.Second},
		{"store.sqlite.path derived from file dataDir", c.Store.SQLite.Path, "/srv/idvault/idvault.db"},
		{"api.publicURL derived from env listen", c.API.PublicURL, "https://127.0.0.1:7443"},
	}
	for _, tt := range checks {
		if !reflect.DeepEqual(tt.got, tt.want) {
			t.Errorf("%s = %v, want %v", tt.name, tt.got, tt.want)
		}
	}
}

func TestLoadEnv(t *testing.T) {
	tests := []struct {
		name string
		env  string
		get  func(Config) any
		want any
	}{
		{"string", "IDVAULT_API__LISTEN=10.0.0.1:443", func(c Config) any { return c.API.Listen }, "10.0.0.1:443"},
		{"integer", "IDVAULT_QUEUE__MAXATTEMPTS=7", func(c Config) any { return c.Queue.MaxAttempts }, 7},
		{"large integer", "IDVAULT_API__MAXUPLOADBYTES=104857600", func(c Config) any { return c.API.MaxUploadBytes }, int64(100 << 20)},
		{"duration", "IDVAULT_SESSIONS__DEFAULTTTL=1h30m", func(c Config) any { return c.Sessions.DefaultTTL }, 90 * time.Minute},
		{"three levels", "IDVAULT_API__TLS__RELOADINTERVAL=1m", func(c Config) any { return c.API.TLS.ReloadInterval }, time.Minute},
		{"lower case", "IDVAULT_api__tls__reloadInterval=2m", func(c Config) any { return c.API.TLS.ReloadInterval }, 2 * time.Minute},
		{"mode", "IDVAULT_MODE=dev", func(c Config) any { return c.Mode }, ModeDev},
		{"roles comma list", "IDVAULT_ROLES=api, workflow", func(c Config) any { return c.Roles }, []Role{RoleAPI, RoleWorkflow}},
		{"roles flow list", "IDVAULT_ROLES=[audit, indexer]", func(c Config) any { return c.Roles }, []Role{RoleAudit, RoleIndexer}},
		{"roles single", "IDVAULT_ROLES=scheduler", func(c Config) any { return c.Roles }, []Role{RoleScheduler}},
		{"string taken verbatim", "IDVAULT_STORE__SQLITE__PATH=null", func(c Config) any { return c.Store.SQLite.Path }, "null"},
		{"string with equals", "IDVAULT_API__PUBLICURL=https://id.example.com/a=b", func(c Config) any { return c.API.PublicURL }, "https://id.example.com/a=b"},
		{"publicURL trailing slash dropped", "IDVAULT_API__PUBLICURL=https://id.example.com/", func(c Config) any { return c.API.PublicURL }, "https://id.example.com"},
		{"dataDir moves derived paths", "IDVAULT_DATADIR=/var/lib/idvault", func(c Config) any { return c.Blob.File.Dir }, "/var/lib/idvault/files"},
		{"secret reference", "IDVAULT_CRYPTO__ROOTKEY=env:ROOT", func(c Config) any { return c.Crypto.RootKey }, secret.Ref("env:ROOT")},
		{"wildcard listen gives localhost URL", "IDVAULT_API__LISTEN=:8443", func(c Config) any { return c.API.PublicURL }, "https://localhost:8443"},
		{"ipv6 listen", "IDVAULT_API__LISTEN=[::1]:8443", func(c Config) any { return c.API.PublicURL }, "https://[::1]:8443"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, err := Load("", []string{tt.env})
			if err != nil {
				t.Fatalf("Load(%q) error = %v", tt.env, err)
			}
			if got := tt.get(c); !reflect.DeepEqual(got, tt.want) {
				t.Fatalf("Load(%q) = %#v, want %#v", tt.env, got, tt.want)
			}
		})
	}
}

func TestLoadEnvIgnored(t *testing.T) {
	env := []string{
		"IDVAULT_TEST_REQUIRE_INTEGRATION=1",
		"IDVAULT_TEST_MONGO_URL=mongodb://localhost",
		"IDVAULT_CONFIG=/etc/idvault.yaml",
		"IDVAULT_=x",
		"IDVAULT=x",
		"API__LISTEN=bad",
		"XIDVAULT_API__LISTEN=bad",
		"IDVAULT_APIX__LISTEN=bad",
		"NOEQUALS",
		"PATH=/usr/bin",
	}
	c, err := Load("", env)
	if err != nil {
		t.Fatalf("Load(unrelated env) error = %v", err)
	}
	if !reflect.DeepEqual(c, Default()) {
		t.Fatalf("Load(unrelated env) = %+v, want Default()", c)
	}
}

func TestLoadEnvErrors(t *testing.T) {
	tests := []struct {
		name string
		env  []string
		want []string
	}{
		{"unknown key", []string{"IDVAULT_API__LISTN=x"}, []string{"IDVAULT_API__LISTN", `api has no key "LISTN"`}},
		{"unknown nested key", []string{"IDVAULT_API__TLS__CERT=x"}, []string{"IDVAULT_API__TLS__CERT", `api.tls has no key "CERT"`}},
		{"section", []string{"IDVAULT_API={listen: x}"}, []string{"IDVAULT_API", "api is a section"}},
		{"below a value", []string{"IDVAULT_MODE__X=1"}, []string{"IDVAULT_MODE__X", "mode is not a section"}},
		{"empty segment", []string{"IDVAULT_API____LISTEN=x"}, []string{"IDVAULT_API____LISTEN", `api has no key ""`}},
		{"not an integer", []string{"IDVAULT_QUEUE__MAXATTEMPTS=many"}, []string{"IDVAULT_QUEUE__MAXATTEMPTS", "queue.maxAttempts", "want an integer", `"many"`}},
		{"fraction", []string{"IDVAULT_QUEUE__MAXATTEMPTS=1.5"}, []string{"IDVAULT_QUEUE__MAXATTEMPTS", "want an integer"}},
		{"empty integer", []string{"IDVAULT_WORKFLOW__CONCURRENCY="}, []string{"IDVAULT_WORKFLOW__CONCURRENCY", "empty value"}},
		{"duration without unit", []string{"IDVAULT_QUEUE__RETRYBACKOFF=30"}, []string{"IDVAULT_QUEUE__RETRYBACKOFF", "want a duration"}},
		{"bad duration", []string{"IDVAULT_QUEUE__RETRYBACKOFF=soon"}, []string{"IDVAULT_QUEUE__RETRYBACKOFF", "want a duration"}},
		{"bad flow list", []string{"IDVAULT_ROLES=[api"}, []string{"IDVAULT_ROLES", "not a YAML flow list"}},
		{"mapping for list", []string{"IDVAULT_ROLES=[{a: b}]"}, []string{"IDVAULT_ROLES", "want a list of strings"}},
		{"same key twice", []string{"IDVAULT_API__LISTEN=a:1", "IDVAULT_api__listen=b:2"}, []string{"IDVAULT_api__listen", "already set by IDVAULT_API__LISTEN"}},
		{"all reported", []string{"IDVAULT_API__LISTN=x", "IDVAULT_QUEUE__MAXATTEMPTS=x"}, []string{"IDVAULT_API__LISTN", "IDVAULT_QUEUE__MAXATTEMPTS"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := Load("", tt.env)
			if err == nil {
				t.Fatalf("Load(%q) error = nil, want one naming %q", tt.env, tt.want)
			}
			for _, w := range tt.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("Load(%q) error = %q, want it to contain %q", tt.env, err, w)
				}
			}
		})
	}
}

func TestLoadFile(t *testing.T) {
	tests := []struct {
		name    string
		content string
		check   func(Config) bool
	}{
		{"empty file", "", func(c Config) bool { return reflect.DeepEqual(c, Default()) }},
		{"comments only", "# nothing here\n", func(c Config) bool { return reflect.DeepEqual(c, Default()) }},
		{"null document", "~\n", func(c Config) bool { return reflect.DeepEqual(c, Default()) }},
		{"empty section keeps defaults", "api:\n", func(c Config) bool { return c.API.Listen == "127.0.0.1:8443" }},
		{"empty value clears a string", "api:\n  publicURL:\n", func(c Config) bool { return c.API.PublicURL == "https://127.0.0.1:8443" }},
		{"flow style", "queue: {maxAttempts: 9, retryBackoff: 2s}", func(c Config) bool {
			return c.Queue.MaxAttempts == 9 && c.Queue.RetryBackoff == 2*time.Second && c.Queue.VisibilityTimeout == 30*time.Second
		}},
		{"aliases", "api:\n  readTimeout: &t 45s\n  writeTimeout: *t\n", func(c Config) bool { return c.API.WriteTimeout == 45*time.Second }},
		{"roles replace the default", "roles: [audit]\n", func(c Config) bool { return reflect.DeepEqual(c.Roles, []Role{RoleAudit}) }},
		{"quoted integer string", "dataDir: \"123\"\n", func(c Config) bool { return c.DataDir == "123" }},
		{"hex integer", "api:\n  maxJSONBytes: 0x100\n", func(c Config) bool { return c.API.MaxJSONBytes == 256 }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, err := Load(writeConfig(t, tt.content), nil)
			if err != nil {
				t.Fatalf("Load(%q) error = %v", tt.content, err)
			}
			if !tt.check(c) {
				t.Fatalf("Load(%q) = %+v, check failed", tt.content, c)
			}
		})
	}
}

// laughs nests aliases nine levels deep (the "billion laughs" document):
// expanded, roles would hold 10^9 entries.
var laughs = func() string {
	var b strings.Builder
	b.WriteString("a: &a0 [x, x, x, x, x, x, x, x, x, x]\n")
	for i := 1; i < 9; i++ {
		fmt.Fprintf(&b, "a%d: &a%d [*a%d, *a%d, *a%d, *a%d, *a%d, *a%d, *a%d, *a%d, *a%d, *a%d]\n", i, i, i-1, i-1, i-1, i-1, i-1, i-1, i-1, i-1, i-1, i-1)
	}
	b.WriteString("roles: [*a8, *a8, *a8, *a8, *a8, *a8, *a8, *a8, *a8, *a8]\n")
	return b.String()
}()

func TestLoadFileErrors(t *testing.T) {
	tests := []struct {
		name    string
		content string
		want    []string
	}{
		{"unknown top-level key", "mode: dev\nlisten: x\n", []string{":2:", "unknown key listen"}},
		{"unknown nested key", "api:\n  tls:\n    certfil: x\n", []string{":3:", "unknown key api.tls.certfil"}},
		{"wrong case", "api:\n  Listen: x\n", []string{":2:", "unknown key api.Listen (did you mean api.listen?)"}},
		{"every unknown key", "a: 1\nb: 2\napi:\n  c: 3\n", []string{":1: unknown key a", ":2: unknown key b", ":4: unknown key api.c"}},
		{"repeated key", "mode: dev\nmode: production\n", []string{":2:", "mode: repeated key (first at line 1)"}},
		{"repeated section", "api:\n  listen: a:1\napi:\n  listen: b:2\n", []string{":3:", "api: repeated key"}},
		{"not an integer", "queue:\n  maxAttempts: lots\n", []string{":2:", "queue.maxAttempts: want an integer, got \"lots\""}},
		{"duration without unit", "queue:\n  retryBackoff: 5\n", []string{":2:", "queue.retryBackoff: want a duration"}},
		{"section as scalar", "api: 8443\n", []string{":1:", "api: want a mapping of keys"}},
		{"list as scalar", "roles: api\n", []string{":1:", "roles: want a list of strings"}},
		{"scalar as list", "mode: [dev]\n", []string{":1:", "mode: want a string, got a list"}},
		{"top-level list", "- mode\n", []string{":1:", "must be a mapping of keys"}},
		{"two documents", "mode: dev\n---\nmode: production\n", []string{":2:", "more than one YAML document"}},
		{"merge key", "api:\n  <<: {listen: x}\n", []string{":2:", "merge keys (<<) are not supported"}},
		{"syntax error", "api:\n  listen: [\n", []string{"config", "yaml:"}},
		{"complex key", "? [a]\n: 1\n", []string{":1:", "keys must be plain names"}},
		{"alias expansion", laughs, []string{"unknown key a", "roles: want a list of strings"}},
		{"type and key errors together", "x: 1\nworkflow:\n  concurrency: many\n", []string{"unknown key x", "workflow.concurrency: want an integer"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			path := writeConfig(t, tt.content)
			c, err := Load(path, nil)
			if err == nil {
				t.Fatalf("Load(%q) error = nil, want one containing %q", tt.content, tt.want)
			}
			if !reflect.DeepEqual(c, Config{}) {
				t.Errorf("Load(%q) returned a non-zero Config with a decoding error", tt.content)
			}
			if !strings.Contains(err.Error(), path) {
				t.Errorf("Load(%q) error = %q, want it to name the file", tt.content, err)
			}
			for _, w := range tt.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("Load(%q) error = %q, want it to contain %q", tt.content, err, w)
				}
			}
		})
	}
}

func TestLoadFileLimits(t *testing.T) {
	if _, err := Load(filepath.Join(t.TempDir(), "missing.yaml"), nil); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("Load(missing file) error = %v, want os.ErrNotExist", err)
	}
	big := writeConfig(t, "# "+strings.Repeat("x", maxFileBytes)+"\n")
	if _, err := Load(big, nil); err == nil || !strings.Contains(err.Error(), "larger than") {
		t.Errorf("Load(oversized file) error = %v, want a size error", err)
	}
}

func TestLoadReturnsConfigWithValidationError(t *testing.T) {
	c, err := Load("", []string{"IDVAULT_WORKFLOW__CONCURRENCY=0"})
	var p *Problem
	if !errors.As(err, &p) || p.Key != "workflow.concurrency" {
		t.Fatalf("Load(concurrency 0) error = %v, want a Problem for workflow.concurrency", err)
	}
	if c.Workflow.Concurrency != 0 || c.API.Listen != "127.0.0.1:8443" {
		t.Fatalf("Load(concurrency 0) = %+v, want the loaded config alongside the error", c)
	}
}

func TestRedacted(t *testing.T) {
	const literal = "0123456789abcdef-literal-root-key"
	c := Default()
	c.Crypto.RootKey = literal
	out, err := c.Redacted()
	if err != nil {
		t.Fatalf("Redacted() error = %v", err)
	}
	if strings.Contains(string(out), literal) {
		t.Fatalf("Redacted() = %s, contains the literal root key", out)
	}
	if !strings.Contains(string(out), "rootKey: REDACTED") {
		t.Fatalf("Redacted() = %s, want rootKey: REDACTED", out)
	}

	c.Crypto.RootKey = "file:/run/secrets/root.key"
	c.Roles = []Role{RoleAPI, RoleAudit}
	c.Queue.MaxAttempts = 9
	out, err = c.Redacted()
	if err != nil {
		t.Fatalf("Redacted() error = %v", err)
	}
	if !strings.Contains(string(out), "rootKey: file:/run/secrets/root.key") {
		t.Fatalf("Redacted() = %s, want the reference shown", out)
	}
	back, err := Load(writeConfig(t, string(out)), nil)
	if err != nil {
		t.Fatalf("Load(Redacted()) error = %v", err)
	}
	if !reflect.DeepEqual(back, c) {
		t.Fatalf("Load(Redacted()) = %+v, want %+v", back, c)
	}
}

func FuzzLoad(f *testing.F) {
	f.Add([]byte("mode: production\napi:\n  listen: 0.0.0.0:443\n"))
	f.Add([]byte("roles: [api, audit]\nqueue: {maxAttempts: 3}\n"))
	f.Add([]byte("api: &a {listen: x}\nstore: *a\n"))
	f.Add([]byte("a: &x [*x]\n"))
	f.Add([]byte("---\n---\n"))
	f.Add([]byte("? [a]\n: b\n"))
	f.Add([]byte("api:\n  <<: {listen: x}\n"))
	f.Add([]byte("sessions:\n  defaultTTL: -5h\n  maxTTL: !!binary AAAA\n"))
	f.Add([]byte(providerYAML))
	f.Add([]byte("auth:\n  oidc:\n    providers: [{name: a, claimMappings: {roles: {x: admin}, extra: 1}}]\n"))
	dir := f.TempDir()
	f.Fuzz(func(t *testing.T, data []byte) {
		path := filepath.Join(dir, "fuzz.yaml")
		if err := os.WriteFile(path, data, 0o600); err != nil {
			t.Fatal(err)
		}
		c, err := Load(path, nil)
		if err == nil {
			if verr := c.Validate(); verr != nil {
				t.Fatalf("Load() = nil error but Validate() = %v", verr)
			}
		}
	})
}

func FuzzEnv(f *testing.F) {
	f.Add("API__LISTEN", "127.0.0.1:1")
	f.Add("ROLES", "[api, audit]")
	f.Add("ROLES", "api,,audit,")
	f.Add("QUEUE__MAXATTEMPTS", "0x10")
	f.Add("API__TLS__RELOADINTERVAL", "1h")
	f.Add("MODE__X__Y", "")
	f.Add("ROLES", "[[a]]")
	f.Fuzz(func(t *testing.T, name, value string) {
		c, err := Load("", []string{EnvPrefix + name + "=" + value})
		if err == nil {
			if verr := c.Validate(); verr != nil {
				t.Fatalf("Load() = nil error but Validate() = %v", verr)
			}
		}
	})
}

func BenchmarkLoad(b *testing.B) {
	data, err := os.ReadFile(filepath.Join("..", "..", "docs", "configuration.md"))
	if err != nil {
		b.Fatal(err)
	}
	example, err := docExample(string(data))
	if err != nil {
		b.Fatal(err)
	}
	path := writeConfig(b, example)
	env := []string{"IDVAULT_API__LISTEN=127.0.0.1:9443", "IDVAULT_ROLES=api,workflow", "IDVAULT_ROOT_KEY=unused"}
	b.SetBytes(int64(len(example)))
	for b.Loop() {
		if _, err := Load(path, env); err != nil {
			b.Fatal(err)
		}
	}
}
