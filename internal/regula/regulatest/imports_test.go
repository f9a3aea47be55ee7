package regulatest

import (
	"os/exec"
	"strings"
	"testing"
)

const self = "github.com/idvault/idvault/internal/regula/regulatest"

// testOnly are the packages that may depend on regulatest: itself and the
// test helpers built on it. Whatever imports one of those helpers depends on
// regulatest too, so the same check covers them.
var testOnly = map[string]bool{
	self: true,
	"github.com/idvault/idvault/internal/regula/httpx/httpxtest": true,
}

// TestOnlyTestsImport fails when a non-test package of the module depends
// on regulatest: the stand-ins must never be reachable from a binary.
// go list without -test lists the dependencies of non-test files only.
func TestOnlyTestsImport(t *testing.T) {
	if testing.Short() {
		t.Skip("lists every package of the module")
	}
	out, err := exec.Command("go", "list", "-e", "-f", `{{.ImportPath}} {{join .Deps " "}}`, "github.com/idvault/idvault/...").Output()
	if err != nil {
		t.Fatalf("go list: %v", err)
	}
	lines := strings.Split(strings.TrimSpace(string(out)), "\n")
	if len(lines) < 10 {
		t.Fatalf("go list listed %d packages, want the whole module", len(lines))
	}
	for _, line := range lines {
		fields := strings.Fields(line)
		if len(fields) == 0 || testOnly[fields[0]] {
			continue
		}
		for _, dep := range fields[1:] {
			if dep == self {
				t.Errorf("%s depends on %s; only _test.go files may import it", fields[0], self)
			}
		}
	}
}
