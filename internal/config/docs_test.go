package config

import (
	"errors"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
)

const docPath = "../../docs/configuration.md"

// keyPaths returns the yaml key path of every leaf of struct type t.
func keyPaths(t reflect.Type, prefix string) []string {
	var paths []string
	for _, f := range fields(t) {
		p := joinPath(prefix, f.name)
		if ft := t.Field(f.index).Type; ft.Kind() == reflect.Struct {
			paths = append(paths, keyPaths(ft, p)...)
		} else {
			paths = append(paths, p)
		}
	}
	return paths
}

func envName(path string) string {
	return EnvPrefix + strings.ToUpper(strings.ReplaceAll(path, ".", "__"))
}

// docExample returns the YAML of the complete example in the reference.
func docExample(doc string) (string, error) {
	_, rest, ok := strings.Cut(doc, "## Complete example")
	if !ok {
		return "", errors.New("no \"## Complete example\" section")
	}
	_, rest, ok = strings.Cut(rest, "```yaml\n")
	if !ok {
		return "", errors.New("no yaml block in the complete example")
	}
	example, _, ok := strings.Cut(rest, "```")
	if !ok {
		return "", errors.New("unterminated yaml block")
	}
	return example, nil
}

func TestDocsCoverEveryKey(t *testing.T) {
	data, err := os.ReadFile(docPath)
	if err != nil {
		t.Fatal(err)
	}
	doc := string(data)
	paths := keyPaths(reflect.TypeFor[Config](), "")
	if len(paths) < 30 {
		t.Fatalf("keyPaths(Config) = %d paths, want at least 30: %q", len(paths), paths)
	}
	for _, p := range paths {
		if !strings.Contains(doc, "`"+p+"`") {
			t.Errorf("%s does not document key `%s`", docPath, p)
		}
		if !strings.Contains(doc, "`"+envName(p)+"`") {
			t.Errorf("%s does not name the variable `%s`", docPath, envName(p))
		}
	}
	example, err := docExample(doc)
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range paths {
		leaf := p[strings.LastIndex(p, ".")+1:]
		if !strings.Contains(example, leaf+":") {
			t.Errorf("the complete example in %s lacks key %s", docPath, p)
		}
	}
}

func TestDocsExampleLoads(t *testing.T) {
	data, err := os.ReadFile(docPath)
	if err != nil {
		t.Fatal(err)
	}
	example, err := docExample(string(data))
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(t.TempDir(), "example.yaml")
	if err := os.WriteFile(path, []byte(example), 0o600); err != nil {
		t.Fatal(err)
	}
	c, err := Load(path, nil)
	if err != nil {
		t.Fatalf("Load(docs example) error = %v", err)
	}
	if c.Mode != ModeProduction {
		t.Errorf("docs example mode = %q, want production", c.Mode)
	}
}
