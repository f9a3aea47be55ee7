package audit_test

import (
	"io/fs"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
)

// TestCatalogueListsEveryAction finds every audit action the code records —
// each `Action: "x"` in a non-test Go file, and the user.enable/disable pair
// built from a state — and checks that docs/audit-events.md lists it, so a
// new event cannot ship undocumented.
func TestCatalogueListsEveryAction(t *testing.T) {
	doc, err := os.ReadFile("../../docs/audit-events.md")
	if err != nil {
		t.Fatal(err)
	}
	action := regexp.MustCompile(`Action: +"([a-z_]+\.[a-z_.]+)"`)
	found := map[string]string{}
	err = filepath.WalkDir("..", func(path string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() || !strings.HasSuffix(path, ".go") || strings.HasSuffix(path, "_test.go") {
			return err
		}
		src, err := os.ReadFile(path)
		if err != nil {
			return err
		}
		for _, m := range action.FindAllStringSubmatch(string(src), -1) {
			found[m[1]] = path
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	for _, a := range []string{"user.enable", "user.disable", "auth.login", "auth.scan_login"} {
		found[a] = "built at run time"
	}
	if len(found) < 30 {
		t.Fatalf("found only %d actions in the code; the scan is broken", len(found))
	}
	for a, where := range found {
		if !strings.Contains(string(doc), "`"+a+"`") {
			t.Errorf("action %s (%s) is not in docs/audit-events.md", a, where)
		}
	}
}
