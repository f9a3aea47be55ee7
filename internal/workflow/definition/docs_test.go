package definition

import (
	"bytes"
	"os"
	"strings"
	"testing"
)

const docsPath = "../../../docs/workflows.md"

// fencedAfter returns the first fenced block after marker in doc.
func fencedAfter(t *testing.T, doc []byte, marker, fence string) []byte {
	t.Helper()
	_, rest, ok := bytes.Cut(doc, []byte(marker))
	if !ok {
		t.Fatalf("%s: no %q", docsPath, marker)
	}
	_, rest, ok = bytes.Cut(rest, []byte("\n"+fence+"\n"))
	if !ok {
		t.Fatalf("%s: no %s block after %q", docsPath, fence, marker)
	}
	block, _, ok := bytes.Cut(rest, []byte("\n```\n"))
	if !ok {
		t.Fatalf("%s: unterminated block after %q", docsPath, marker)
	}
	return append(block, '\n')
}

func readDocs(t *testing.T) []byte {
	t.Helper()
	doc, err := os.ReadFile(docsPath)
	if err != nil {
		t.Fatal(err)
	}
	return doc
}

// TestDocsExample checks that the complete example in docs/workflows.md
// parses and is testdata/example.yaml.
func TestDocsExample(t *testing.T) {
	block := fencedAfter(t, readDocs(t), "<!-- example: internal/workflow/definition/testdata/example.yaml -->", "```yaml")
	if _, err := Parse(block); err != nil {
		t.Fatalf("Parse(docs example) = %v", err)
	}
	want, err := os.ReadFile("testdata/example.yaml")
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(block, want) {
		t.Errorf("the example in %s differs from testdata/example.yaml", docsPath)
	}
}

// TestDocsProblems checks the validation example of docs/workflows.md
// against Parse.
func TestDocsProblems(t *testing.T) {
	block := fencedAfter(t, readDocs(t), "<!-- problems of the example", "```")
	example, err := os.ReadFile("testdata/example.yaml")
	if err != nil {
		t.Fatal(err)
	}
	doc := string(example)
	for _, r := range [][2]string{
		{"threshold: 0.75", "threshold: 1.75"},
		{"face_match.similarity < 0.85", `face_match.similarity < "0.85"`},
		{"on_reject: rejected\n", "on_reject: rejected-liveness\n"},
	} {
		if strings.Count(doc, r[0]) != 1 {
			t.Fatalf("example: %q occurs %d times", r[0], strings.Count(doc, r[0]))
		}
		doc = strings.Replace(doc, r[0], r[1], 1)
	}
	_, err = Parse([]byte(doc))
	if err == nil || err.Error()+"\n" != string(block) {
		t.Errorf("Parse(edited example) = %v, docs say\n%s", err, block)
	}
}

// TestDocsComplete checks that docs/workflows.md names every step type,
// field, variable, scenario and event.
func TestDocsComplete(t *testing.T) {
	doc := string(readDocs(t))
	var names []string
	for _, st := range stepTypes {
		names = append(names, "### `"+string(st)+"`")
	}
	for _, f := range append(append([]string{}, definitionFields...), allStepFields...) {
		names = append(names, "`"+f+"`")
	}
	for _, f := range []string{"pages[].side", "pages[].required", "cases[].when", "cases[].next", "cases[].decision", "cases[].reason"} {
		names = append(names, "`"+f+"`")
	}
	for _, v := range Variables() {
		names = append(names, "| `"+v.Name+"` | `"+v.Type+"` |")
	}
	for _, s := range append(append([]string{}, Scenarios...), Events...) {
		names = append(names, "`"+s+"`")
	}
	for _, n := range names {
		if !strings.Contains(doc, n) {
			t.Errorf("%s does not mention %s", docsPath, n)
		}
	}
	flat := strings.Join(strings.Fields(doc), " ")
	if !strings.Contains(flat, "at most 256 KiB, at most 100 steps, 50 cases a rule, 4096 bytes an expression, 64 KiB of expressions in all, 10 retries, a timeout of 1s to 720h") || MaxBytes != 256<<10 || MaxSteps != 100 || MaxCases != 50 || MaxExpressionBytes != 4096 || MaxTotalExpressionBytes != 64<<10 || MaxRetries != 10 || MaxTimeout.String() != "720h0m0s" {
		t.Errorf("%s: the limits it states differ from the code's", docsPath)
	}
	if !strings.Contains(flat, "at most 100 000") || MaxRuleCost != 100_000 || !strings.Contains(flat, "deeper than 32 levels") || maxExprDepth != 32 {
		t.Errorf("%s: the rule limits it states differ from the code's", docsPath)
	}
}
