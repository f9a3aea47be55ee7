package definition_test

import (
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"

	"github.com/idvault/idvault/internal/workflow/definition"
)

// ruleProblemCases replace the expression on line 21 (column 15) of
// ruleDoc.
var ruleProblemCases = []struct {
	name string
	when string
	want []string
}{
	{"type mismatch", `face_match.similarity > "0.9"`,
		[]string{"found no matching overload for '_>_' applied to '(double, string)' (at 1:23 in the expression)"}},
	{"int compared to string", `docreader.overallStatus == "1"`,
		[]string{"found no matching overload for '_==_' applied to '(int, string)' (at 1:25 in the expression)"}},
	{"undeclared field", `face_match.simlarity > 0.9`,
		[]string{"undeclared reference to 'face_match' (in container '') (at 1:1 in the expression)"}},
	{"undeclared variable", `score > 0.9`,
		[]string{"undeclared reference to 'score' (in container '') (at 1:1 in the expression)"}},
	{"not a bool", `face_match.similarity`,
		[]string{"must be a bool expression, is double"}},
	{"dyn is not a bool", `session.metadata.vip`,
		[]string{"must be a bool expression, is dyn"}},
	{"syntax error", `face_match.similarity >`,
		[]string{"Syntax error: mismatched input '<EOF>' expecting {'[', '{', '(', '.', '-', '!', 'true', 'false', 'null', NUM_FLOAT, NUM_INT, NUM_UINT, STRING, BYTES, IDENTIFIER} (at 1:24 in the expression)"}},
	{"nested comprehension", `session.metadata.all(k, session.metadata.exists(j, j == k))`,
		[]string{"comprehension exceeds nesting limit (at 1:48 in the expression)"}},
	{"map macro", `[1, 2].map(x, x > 1).size() > 0`,
		[]string{"undeclared reference to 'map' (in container '') (at 1:11 in the expression)",
			"undeclared reference to 'x' (in container '') (at 1:12 in the expression)",
			"undeclared reference to 'x' (in container '') (at 1:15 in the expression)"}},
	{"filter macro", `[1, 2].filter(x, x > 1) == [2]`,
		[]string{"undeclared reference to 'filter' (in container '') (at 1:14 in the expression)",
			"undeclared reference to 'x' (in container '') (at 1:15 in the expression)",
			"undeclared reference to 'x' (in container '') (at 1:18 in the expression)"}},
	{"bad regex", `"a".matches("(")`,
		[]string{"invalid matches argument (at 1:13 in the expression)"}},
	{"deep nesting", strings.Repeat("(", 40) + "true" + strings.Repeat(")", 40),
		[]string{"expression recursion limit exceeded: 32"}},
	{"variable of a step not run before", `docreader.overallStatus == 1`,
		[]string{`reads docreader.overallStatus, but no docreader step runs before rule "decide" on every path from start`}},
	{"liveness not run before", `liveness.passed`,
		[]string{`reads liveness.passed, but no liveness step runs before rule "decide" on every path from start`}},
	{"steps of an unknown step", `steps.nope.status == "passed"`,
		[]string{`reads steps.nope, but no step has id "nope"`}},
	{"steps of a step not run before", `steps["ko"].status == "completed"`,
		[]string{`reads steps.ko, but step "ko" does not run before rule "decide" on every path from start`}},
	{"steps not indexed", `size(steps) > 2`,
		[]string{`read steps as steps.<id>.status or steps["<id>"].status`}},
	{"steps indexed by a variable", `steps[session.metadata.step].status == "passed"`,
		[]string{`read steps as steps.<id>.status or steps["<id>"].status`}},
	{"steps field other than status", `steps.match.result == "passed"`,
		[]string{`read steps as steps.<id>.status or steps["<id>"].status`}},
}

func TestRuleProblems(t *testing.T) {
	for _, tc := range ruleProblemCases {
		t.Run(tc.name, func(t *testing.T) {
			doc := strings.Replace(ruleDoc, "face_match.similarity > 0.9", "'"+strings.ReplaceAll(tc.when, "'", "''")+"'", 1)
			want := make([]string, len(tc.want))
			for i, w := range tc.want {
				want[i] = "steps[3].cases[0].when: " + w + " (line 21, column 15)"
			}
			checkProblems(t, doc, want)
		})
	}
}

func TestRuleAccepts(t *testing.T) {
	for _, when := range []string{
		`steps.match.status == "passed" && steps["doc"].status == "completed"`,
		`face_match.passed || face_match.similarity >= 0.5`,
		`has(session.metadata.vip) && session.metadata.vip == true`,
		`"country" in session.metadata && session.metadata.country in ["DE", "FR"]`,
		`session.metadata.exists(k, k.startsWith("x")) && session.metadata.all(k, k.size() < 10)`,
		`session.metadata.exists_one(k, k.matches("^a+$"))`,
	} {
		doc := strings.Replace(ruleDoc, "face_match.similarity > 0.9", "'"+strings.ReplaceAll(when, "'", "''")+"'", 1)
		if _, err := definition.Parse([]byte(doc)); err != nil {
			t.Errorf("Parse(when: %s) = %v", when, err)
		}
	}
}

// exampleVars are variables for the example's checks rule under which no
// case matches.
func exampleVars() map[string]any {
	return map[string]any{
		definition.VarSessionMetadata:        map[string]any{"ref": "order-17"},
		definition.VarDocReaderOverallStatus: 1,
		definition.VarDocReaderDocumentType:  "Germany - Id Card (2010)",
		definition.VarDocReaderFields:        map[string]string{"Age": "34", "Surname": "MUSTERMANN"},
		definition.VarDocReaderPassed:        true,
		definition.VarFaceMatchSimilarity:    0.93,
		definition.VarFaceMatchPassed:        true,
		definition.VarLivenessPassed:         true,
		definition.VarSteps: map[string]map[string]string{
			"document": {"status": definition.StepCompleted}, "selfie": {"status": definition.StepCompleted},
			"liveness": {"status": definition.StepPassed}, "docreader": {"status": definition.StepPassed},
			"face-match": {"status": definition.StepPassed},
		},
	}
}

func TestEvaluate(t *testing.T) {
	d := mustParse(t, readExample(t))
	with := func(change func(v map[string]any)) map[string]any {
		v := exampleVars()
		change(v)
		return v
	}
	tests := []struct {
		name                   string
		vars                   map[string]any
		next, decision, reason string
	}{
		{"no case matches", exampleVars(), "approved", "", ""},
		{"first case: under 18", with(func(v map[string]any) {
			v[definition.VarDocReaderFields] = map[string]string{"Age": "17"}
			v[definition.VarFaceMatchSimilarity] = 0.5 // the third case matches too; the first wins
		}), "", definition.Rejected, "under 18"},
		{"second case: high risk", with(func(v map[string]any) {
			v[definition.VarSessionMetadata] = map[string]any{"risk": "high"}
		}), "notify-review", "", ""},
		{"third case: low similarity", with(func(v map[string]any) {
			v[definition.VarFaceMatchSimilarity] = 0.8
		}), "notify-review", "", ""},
		{"third case: checks not done", with(func(v map[string]any) {
			v[definition.VarDocReaderOverallStatus] = int64(2)
		}), "notify-review", "", ""},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			next, decision, reason, err := d.Evaluate("checks", tc.vars)
			if err != nil || next != tc.next || decision != tc.decision || reason != tc.reason {
				t.Errorf("Evaluate(checks) = %q, %q, %q, %v, want %q, %q, %q", next, decision, reason, err, tc.next, tc.decision, tc.reason)
			}
		})
	}
}

func TestEvaluateErrors(t *testing.T) {
	d := mustParse(t, readExample(t))
	missing := exampleVars()
	delete(missing, definition.VarDocReaderFields)
	badAge := exampleVars()
	badAge[definition.VarDocReaderFields] = map[string]string{"Age": "old"}
	wrongType := exampleVars()
	wrongType[definition.VarFaceMatchSimilarity] = "high"
	tests := []struct {
		name   string
		def    definition.Definition
		step   string
		vars   map[string]any
		target error
		msg    string
	}{
		{"not parsed", definition.Definition{Steps: d.Steps}, "checks", exampleVars(), definition.ErrNotParsed, "definition: not parsed"},
		{"unknown step", d, "nope", exampleVars(), definition.ErrUnknownStep, `evaluate "nope": definition: unknown step`},
		{"not a rule", d, "review", exampleVars(), definition.ErrNotRule, `evaluate "review": definition: not a rule step`},
		{"missing variable", d, "checks", missing, nil, `evaluate "checks": cases[0]: no such attribute(s): docreader.fields`},
		{"nil vars", d, "checks", nil, nil, `evaluate "checks": cases[0]: no such attribute(s): docreader.fields`},
		{"conversion fails", d, "checks", badAge, nil, `evaluate "checks": cases[0]: type conversion error from 'string' to 'int'`},
		{"value of the wrong type", d, "checks", wrongType, nil, `evaluate "checks": cases[2]: no such overload`},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			next, decision, _, err := tc.def.Evaluate(tc.step, tc.vars)
			if err == nil || err.Error() != tc.msg || (tc.target != nil && !errors.Is(err, tc.target)) || next != "" || decision != "" {
				t.Errorf("Evaluate(%q) = %q, %q, %v, want error %q", tc.step, next, decision, err, tc.msg)
			}
		})
	}
}

// TestEvaluateCostLimit is an attack: a rule that iterates over data the
// person controls (document fields, metadata) is stopped by the cost limit
// instead of running for as long as the input is large.
func TestEvaluateCostLimit(t *testing.T) {
	doc := strings.Replace(ruleDoc, "face_match.similarity > 0.9", `session.metadata.exists(k, k.matches("^(a|b)*c$"))`, 1)
	d := mustParse(t, []byte(doc))
	small := map[string]any{}
	for i := range 10 {
		small[fmt.Sprintf("k%d", i)] = i
	}
	_, decision, _, err := d.Evaluate("decide", map[string]any{definition.VarSessionMetadata: small})
	if err != nil || decision != definition.Rejected {
		t.Fatalf("Evaluate(small input) = %q, %v, want rejected", decision, err)
	}
	huge := map[string]any{}
	for i := range 200_000 {
		huge[fmt.Sprintf("key-%d-%s", i, strings.Repeat("a", 40))] = i
	}
	_, decision, _, err = d.Evaluate("decide", map[string]any{definition.VarSessionMetadata: huge})
	if err == nil || !strings.Contains(err.Error(), "cost limit exceeded") || decision != "" {
		t.Errorf("Evaluate(huge input) = %q, %v, want a cost limit error", decision, err)
	}
}

func TestEvaluateConcurrent(t *testing.T) {
	d := mustParse(t, readExample(t))
	var wg sync.WaitGroup
	errs := make([]error, 8)
	for g := range errs {
		wg.Go(func() {
			for i := range 200 {
				v := exampleVars()
				want := "approved"
				if i%2 == 1 {
					v[definition.VarFaceMatchSimilarity] = 0.5
					want = "notify-review"
				}
				next, _, _, err := d.Evaluate("checks", v)
				if err != nil || next != want {
					errs[g] = fmt.Errorf("Evaluate(checks) = %q, %v, want %q", next, err, want)
					return
				}
			}
		})
	}
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		t.Error(err)
	}
}

func TestVariables(t *testing.T) {
	got := map[string]string{}
	for _, v := range definition.Variables() {
		got[v.Name] = v.Type + " " + string(v.Step)
	}
	want := map[string]string{
		"session.metadata":        "map(string, dyn) ",
		"docreader.overallStatus": "int docreader",
		"docreader.documentType":  "string docreader",
		"docreader.fields":        "map(string, string) docreader",
		"docreader.passed":        "bool docreader",
		"face_match.similarity":   "double face_match",
		"face_match.passed":       "bool face_match",
		"liveness.passed":         "bool liveness",
		"steps":                   "map(string, map(string, string)) ",
	}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("Variables() = %v, want %v", got, want)
	}
}
