package config

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"time"

	"gopkg.in/yaml.v3"
)

// EnvPrefix starts every environment variable that overrides a key.
const EnvPrefix = "IDVAULT_"

// maxFileBytes caps the size of a configuration file.
const maxFileBytes = 1 << 20

// Load returns the configuration read from the YAML file at path (none if
// path is empty) with the overrides in environ (KEY=VALUE entries, as from
// os.Environ) applied, derived keys filled in, and validated; see the package
// documentation for the order.
//
// An environment variable overrides a key when its name is EnvPrefix
// followed by the key path, upper or lower case, with "__" between levels:
// IDVAULT_API__LISTEN, IDVAULT_QUEUE__MAXATTEMPTS. A variable whose first
// segment is not a top-level key (IDVAULT_CONFIG, IDVAULT_TEST_...) is
// ignored; one whose first segment is a key but whose path is not, or that
// names a section rather than a value, is an error. String values are taken
// verbatim; other values are parsed as YAML scalars of the key's type
// (durations like 30s); lists take a YAML flow list ([api, audit]) or a
// comma-separated list (api,audit).
//
// Errors name the file and line, or the variable, and the key path. On a
// validation error Load returns the loaded Config as well as the error, so
// that a caller such as idvault doctor can still show it; on any other error
// it returns the zero Config.
func Load(path string, environ []string) (Config, error) {
	c := base()
	if path != "" {
		data, err := readFile(path)
		if err != nil {
			return Config{}, err
		}
		if err := decodeFile(path, data, &c); err != nil {
			return Config{}, err
		}
	}
	if err := applyEnv(&c, environ); err != nil {
		return Config{}, err
	}
	c.derive()
	if err := c.Validate(); err != nil {
		return c, err
	}
	return c, nil
}

func readFile(path string) ([]byte, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("read config: %w", err)
	}
	defer f.Close()
	data, err := io.ReadAll(io.LimitReader(f, maxFileBytes+1))
	if err != nil {
		return nil, fmt.Errorf("read config: %w", err)
	}
	if len(data) > maxFileBytes {
		return nil, fmt.Errorf("read config %s: larger than %d bytes", path, maxFileBytes)
	}
	return data, nil
}

// decodeFile applies the YAML document in data onto c. It walks the node
// tree against Config's yaml tags rather than letting yaml.v3 decode the
// whole struct, so that every unknown or repeated key and every badly typed
// value is reported at once with its key path and line.
func decodeFile(name string, data []byte, c *Config) error {
	dec := yaml.NewDecoder(bytes.NewReader(data))
	var doc yaml.Node
	if err := dec.Decode(&doc); err != nil {
		if errors.Is(err, io.EOF) {
			return nil
		}
		return fmt.Errorf("config %s: %w", name, err)
	}
	var extra yaml.Node
	if err := dec.Decode(&extra); !errors.Is(err, io.EOF) {
		if err != nil {
			return fmt.Errorf("config %s: %w", name, err)
		}
		return fmt.Errorf("config %s:%d: more than one YAML document", name, extra.Line)
	}
	root := &doc
	if root.Kind == yaml.DocumentNode && len(root.Content) == 1 {
		root = root.Content[0]
	}
	if isNull(root) {
		return nil
	}
	if root.Kind != yaml.MappingNode {
		return fmt.Errorf("config %s:%d: the document must be a mapping of keys, got %s", name, root.Line, describeNode(root))
	}
	w := fileWalker{name: name}
	w.walk(root, reflect.ValueOf(c).Elem(), "")
	return errors.Join(w.errs...)
}

type fileWalker struct {
	name string
	errs []error
}

func (w *fileWalker) errorf(n *yaml.Node, format string, args ...any) {
	w.errs = append(w.errs, fmt.Errorf("config %s:%d: %s", w.name, n.Line, fmt.Sprintf(format, args...)))
}

// walk applies mapping n onto struct v, whose key path is path. It recurses
// only into distinct known keys of struct type, so the work is bounded by
// the size of Config's type even when aliases repeat nodes.
func (w *fileWalker) walk(n *yaml.Node, v reflect.Value, path string) {
	n = deref(n)
	if isNull(n) {
		return
	}
	if n.Kind != yaml.MappingNode {
		w.errorf(n, "%s: want a mapping of keys, got %s", path, describeNode(n))
		return
	}
	seen := make(map[string]int)
	for i := 0; i+1 < len(n.Content); i += 2 {
		k, val := n.Content[i], n.Content[i+1]
		if k.Kind != yaml.ScalarNode {
			w.errorf(k, "%s: keys must be plain names, got %s", orTop(path), describeNode(k))
			continue
		}
		if k.Value == "<<" && k.ShortTag() == "!!merge" {
			w.errorf(k, "%s: merge keys (<<) are not supported", orTop(path))
			continue
		}
		key := joinPath(path, k.Value)
		f, ok := fieldByName(v.Type(), k.Value)
		if !ok {
			if g, ok := fieldFold(v.Type(), k.Value); ok {
				w.errorf(k, "unknown key %s (did you mean %s?)", key, joinPath(path, g.name))
			} else {
				w.errorf(k, "unknown key %s", key)
			}
			continue
		}
		if line, dup := seen[k.Value]; dup {
			w.errorf(k, "%s: repeated key (first at line %d)", key, line)
			continue
		}
		seen[k.Value] = k.Line
		fv := v.Field(f.index)
		if fv.Kind() == reflect.Struct {
			w.walk(val, fv, key)
			continue
		}
		if err := setLeaf(fv, deref(val)); err != nil {
			w.errorf(val, "%s: %v", key, err)
		}
	}
}

// applyEnv applies the IDVAULT_ overrides in environ onto c.
func applyEnv(c *Config, environ []string) error {
	root := reflect.ValueOf(c).Elem()
	var errs []error
	setBy := make(map[string]string)
	for _, kv := range environ {
		name, value, ok := strings.Cut(kv, "=")
		if !ok || !strings.HasPrefix(name, EnvPrefix) {
			continue
		}
		segs := strings.Split(name[len(EnvPrefix):], "__")
		if _, ok := fieldFold(root.Type(), segs[0]); !ok {
			continue
		}
		v, key, err := envTarget(root, segs)
		if err != nil {
			errs = append(errs, fmt.Errorf("%s: %w", name, err))
			continue
		}
		if prev, dup := setBy[key]; dup {
			errs = append(errs, fmt.Errorf("%s: %s is already set by %s", name, key, prev))
			continue
		}
		setBy[key] = name
		n, err := envNode(v.Type(), value)
		if err == nil {
			err = setLeaf(v, n)
		}
		if err != nil {
			errs = append(errs, fmt.Errorf("%s: %s: %w", name, key, err))
		}
	}
	return errors.Join(errs...)
}

// envTarget finds the leaf field that the name segments segs address.
func envTarget(root reflect.Value, segs []string) (reflect.Value, string, error) {
	v, key := root, ""
	for _, seg := range segs {
		if v.Kind() != reflect.Struct {
			return reflect.Value{}, "", fmt.Errorf("%s is not a section, it has no key %q", key, seg)
		}
		f, ok := fieldFold(v.Type(), seg)
		if !ok {
			return reflect.Value{}, "", fmt.Errorf("%s has no key %q", orTop(key), seg)
		}
		v, key = v.Field(f.index), joinPath(key, f.name)
	}
	if v.Kind() == reflect.Struct {
		return reflect.Value{}, "", fmt.Errorf("%s is a section; set its keys one by one", key)
	}
	return v, key, nil
}

// envNode turns an environment value into the YAML node for a field of
// type t.
func envNode(t reflect.Type, value string) (*yaml.Node, error) {
	switch t.Kind() {
	case reflect.String:
		return &yaml.Node{Kind: yaml.ScalarNode, Tag: "!!str", Value: value}, nil
	case reflect.Slice:
		if strings.HasPrefix(strings.TrimSpace(value), "[") {
			var doc yaml.Node
			if err := yaml.Unmarshal([]byte(value), &doc); err != nil || len(doc.Content) != 1 {
				return nil, fmt.Errorf("%q is not a YAML flow list", value)
			}
			return doc.Content[0], nil
		}
		seq := &yaml.Node{Kind: yaml.SequenceNode, Tag: "!!seq"}
		for item := range strings.SplitSeq(value, ",") {
			if item = strings.TrimSpace(item); item == "" {
				continue
			}
			n := &yaml.Node{Kind: yaml.ScalarNode, Value: item}
			if t.Elem().Kind() == reflect.String {
				n.Tag = "!!str"
			}
			seq.Content = append(seq.Content, n)
		}
		return seq, nil
	default:
		if strings.TrimSpace(value) == "" {
			return nil, fmt.Errorf("want %s, got an empty value", describeType(t))
		}
		return &yaml.Node{Kind: yaml.ScalarNode, Value: value}, nil
	}
}

var durationType = reflect.TypeFor[time.Duration]()

// setLeaf decodes n into the non-struct field v, leaving v unchanged on
// error. An explicit null sets the zero value.
func setLeaf(v reflect.Value, n *yaml.Node) error {
	want := describeType(v.Type())
	switch v.Kind() {
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64:
		// yaml.v3 would truncate 1.5 to 1; insist on an integer.
		if v.Type() != durationType && n.Kind == yaml.ScalarNode && !isNull(n) && n.ShortTag() != "!!int" {
			return fmt.Errorf("want %s, got %s", want, describeNode(n))
		}
	case reflect.Slice:
		if n.Kind != yaml.SequenceNode && !isNull(n) {
			return fmt.Errorf("want %s, got %s", want, describeNode(n))
		}
	}
	p := reflect.New(v.Type())
	if err := n.Decode(p.Interface()); err != nil {
		if uk, ok := errors.AsType[*unknownKeyError](err); ok {
			return uk
		}
		return fmt.Errorf("want %s, got %s", want, describeNode(n))
	}
	v.Set(p.Elem())
	return nil
}

func describeType(t reflect.Type) string {
	switch {
	case t == durationType:
		return "a duration such as 30s, 5m or 24h"
	case t.Kind() == reflect.Bool:
		return "true or false"
	case t.Kind() == reflect.String:
		return "a string"
	case t.Kind() == reflect.Slice:
		return "a list of " + strings.TrimPrefix(describeType(t.Elem()), "a ") + "s"
	case t.Kind() == reflect.Struct, t.Kind() == reflect.Map:
		return "a mapping"
	default:
		return "an integer"
	}
}

func describeNode(n *yaml.Node) string {
	switch n.Kind {
	case yaml.MappingNode:
		return "a mapping"
	case yaml.SequenceNode:
		return "a list"
	case yaml.ScalarNode:
		s := n.Value
		if len(s) > 40 {
			s = s[:40] + "..."
		}
		return fmt.Sprintf("%q", s)
	default:
		return "an alias"
	}
}

func deref(n *yaml.Node) *yaml.Node {
	for n.Kind == yaml.AliasNode && n.Alias != nil {
		n = n.Alias
	}
	return n
}

func isNull(n *yaml.Node) bool { return n.Kind == yaml.ScalarNode && n.ShortTag() == "!!null" }

// field is a struct field known by its yaml key name.
type field struct {
	name  string
	index int
}

// fields returns the yaml-tagged fields of struct type t.
func fields(t reflect.Type) []field {
	var fs []field
	for i := range t.NumField() {
		name, _, _ := strings.Cut(t.Field(i).Tag.Get("yaml"), ",")
		if name != "" && name != "-" {
			fs = append(fs, field{name: name, index: i})
		}
	}
	return fs
}

func fieldByName(t reflect.Type, name string) (field, bool) {
	for _, f := range fields(t) {
		if f.name == name {
			return f, true
		}
	}
	return field{}, false
}

func fieldFold(t reflect.Type, name string) (field, bool) {
	for _, f := range fields(t) {
		if strings.EqualFold(f.name, name) {
			return f, true
		}
	}
	return field{}, false
}

func joinPath(path, key string) string {
	if path == "" {
		return key
	}
	return path + "." + key
}

func orTop(path string) string {
	if path == "" {
		return "top level"
	}
	return path
}

// derive fills the keys whose defaults depend on other keys, if left empty:
// store.sqlite.path, blob.file.dir, api.publicURL and each OIDC provider's
// redirectUrl. It also drops trailing slashes from api.publicURL. It is
// idempotent.
func (c *Config) derive() {
	if c.Store.Type == "sqlite" && c.Store.SQLite.Path == "" && c.DataDir != "" {
		c.Store.SQLite.Path = filepath.Join(c.DataDir, "idvault.db")
	}
	if c.Blob.Type == "file" && c.Blob.File.Dir == "" && c.DataDir != "" {
		c.Blob.File.Dir = filepath.Join(c.DataDir, "files")
	}
	if c.API.PublicURL == "" {
		if host, port, err := net.SplitHostPort(c.API.Listen); err == nil {
			if ip := net.ParseIP(host); host == "" || ip != nil && ip.IsUnspecified() {
				host = "localhost"
			}
			c.API.PublicURL = "https://" + net.JoinHostPort(host, port)
		}
	}
	c.API.PublicURL = strings.TrimRight(c.API.PublicURL, "/")
	c.deriveOIDC()
	c.deriveAudit()
}

// Redacted returns the configuration as YAML, as Load would read it back.
// Secret references (env:NAME, file:/path) appear as they are, since they
// are not secrets; a literal secret appears as REDACTED. The output is safe
// to log or print.
func (c Config) Redacted() ([]byte, error) {
	var buf bytes.Buffer
	enc := yaml.NewEncoder(&buf)
	enc.SetIndent(2)
	if err := enc.Encode(c); err != nil {
		return nil, fmt.Errorf("marshal config: %w", err)
	}
	if err := enc.Close(); err != nil {
		return nil, fmt.Errorf("marshal config: %w", err)
	}
	return buf.Bytes(), nil
}
