package definition_test

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/idvault/idvault/internal/workflow/definition"
)

// base is a small valid definition; the problem tests edit it in place so
// that the line numbers below stay right.
const base = `id: kyc
version: 1
name: KYC
start: doc
steps:
  - id: doc
    type: document
    pages: [{side: front}]
    next: selfie
  - id: selfie
    type: selfie
    next: match
  - id: match
    type: face_match
    threshold: 0.8
    on_fail: ko
    next: ok
  - id: ok
    type: decision
    decision: approved
  - id: ko
    type: decision
    decision: rejected
`

// edit returns base with old replaced by new; old must occur exactly once.
func edit(t testing.TB, doc, old, new string) string {
	t.Helper()
	if strings.Count(doc, old) != 1 {
		t.Fatalf("edit: %q occurs %d times", old, strings.Count(doc, old))
	}
	return strings.Replace(doc, old, new, 1)
}

func readExample(t testing.TB) []byte {
	t.Helper()
	data, err := os.ReadFile("testdata/example.yaml")
	if err != nil {
		t.Fatal(err)
	}
	return data
}

func mustParse(t testing.TB, data []byte) definition.Definition {
	t.Helper()
	d, err := definition.Parse(data)
	if err != nil {
		t.Fatalf("Parse: %v", err)
	}
	return d
}

func TestParseExample(t *testing.T) {
	d := mustParse(t, readExample(t))
	if d.ID != "retail-onboarding" || d.Version != 3 || d.Name != "Retail onboarding" || d.Start != "document" || len(d.Steps) != 11 {
		t.Fatalf("Parse(example) = %s %d %q start %q, %d steps", d.ID, d.Version, d.Name, d.Start, len(d.Steps))
	}
	step := func(id string) definition.Step {
		s, ok := d.Step(id)
		if !ok {
			t.Fatalf("Step(%q) not found", id)
		}
		return s
	}
	if s := step("document"); !slices.Equal(s.Pages, []definition.Page{{Side: "front", Required: true}, {Side: "back", Required: false}}) || s.Timeout != 30*time.Minute || s.Next != "selfie" {
		t.Errorf("document step = %+v", s)
	}
	if s := step("liveness"); s.Type != definition.TypeLiveness || s.Retries != 3 || s.Timeout != 20*time.Second || s.OnFail != "rejected-liveness" {
		t.Errorf("liveness step = %+v", s)
	}
	if s := step("docreader"); s.Scenario != "FullProcess" || s.RequiredStatus != definition.StatusNotError || s.OnFail != "notify-review" {
		t.Errorf("docreader step = %+v", s)
	}
	if s := step("face-match"); s.Threshold == nil || *s.Threshold != 0.75 || s.Next != "checks" {
		t.Errorf("face-match step = %+v", s)
	}
	if s := step("checks"); len(s.Cases) != 3 || s.Cases[0].Decision != definition.Rejected || s.Cases[0].Reason != "under 18" || s.Default.Next != "approved" {
		t.Errorf("checks step = %+v", s)
	}
	if s := step("notify-review"); !slices.Equal(s.Events, []string{definition.EventReviewRequired}) || s.Retries != 5 {
		t.Errorf("notify-review step = %+v", s)
	}
	if s := step("review"); s.OnApprove != "approved" || s.OnReject != "rejected" || !strings.HasPrefix(s.Instructions, "Compare the document portrait") {
		t.Errorf("review step = %+v", s)
	}
	if s := step("rejected-liveness"); s.Decision != definition.Rejected || s.Reason != "liveness not confirmed" {
		t.Errorf("rejected-liveness step = %+v", s)
	}
	if _, ok := d.Step("nope"); ok {
		t.Error(`Step("nope") found a step`)
	}
	built := definition.Definition{Steps: d.Steps} // not from Parse
	if s, ok := built.Step("review"); !ok || s.OnApprove != "approved" {
		t.Errorf("Step(review) of a built Definition = %+v, %v", s, ok)
	}
	if _, ok := built.Step("nope"); ok {
		t.Error(`Step("nope") of a built Definition found a step`)
	}
}

func TestParseJSON(t *testing.T) {
	want := mustParse(t, readExample(t)).Canonical()
	var pretty strings.Builder
	var v any
	if err := json.Unmarshal(want, &v); err != nil {
		t.Fatal(err)
	}
	enc := json.NewEncoder(&pretty)
	enc.SetIndent("", "\t") // tabs are blanks in JSON, not YAML indentation
	if err := enc.Encode(v); err != nil {
		t.Fatal(err)
	}
	// JSON escapes YAML does not read: \/ and a surrogate pair.
	doc := strings.Replace(pretty.String(), `"Retail onboarding"`, `"Retail\/onboarding \ud83d\ude00"`, 1)
	d := mustParse(t, []byte(doc))
	if d.Name != "Retail/onboarding 😀" {
		t.Errorf("Parse(JSON).Name = %q, want %q", d.Name, "Retail/onboarding 😀")
	}
	d.Name = "Retail onboarding"
	if got := d.Canonical(); string(got) != string(want) {
		t.Errorf("Parse(indented JSON).Canonical() = %s, want %s", got, want)
	}
}

func TestRoundTrip(t *testing.T) {
	docs := map[string]string{
		"example": string(readExample(t)),
		"base":    base,
		"zero threshold and optional back page": edit(t, edit(t, base, "threshold: 0.8", "threshold: 0"),
			"pages: [{side: front}]", "pages: [{side: back, required: false}, {side: front}]"),
		"text with markup":               edit(t, base, "name: KYC", `name: "<b>KYC</b> & \"more\" \u2028 é"`),
		"threshold left to the platform": edit(t, base, "    threshold: 0.8\n", ""),
	}
	for name, doc := range docs {
		t.Run(name, func(t *testing.T) {
			d := mustParse(t, []byte(doc))
			c := d.Canonical()
			again := mustParse(t, c)
			if got := again.Canonical(); string(got) != string(c) {
				t.Errorf("Parse(Canonical()).Canonical() = %s, want %s", got, c)
			}
			if again.Hash() != d.Hash() || len(d.Hash()) != 64 {
				t.Errorf("Hash() = %s after round trip, %s before", again.Hash(), d.Hash())
			}
			type record struct{ Workflow definition.Definition }
			b, err := json.Marshal(record{d})
			if err != nil {
				t.Fatal(err)
			}
			var r record
			if err := json.Unmarshal(b, &r); err != nil {
				t.Fatalf("json.Unmarshal(record): %v", err)
			}
			if got := r.Workflow.Canonical(); string(got) != string(c) {
				t.Errorf("json round trip = %s, want %s", got, c)
			}
		})
	}
}

// TestThresholdOptional: a face_match step without threshold leaves it to
// the platform (nil), and its canonical form has none; 0 is a threshold
// of its own, not the absence of one.
func TestThresholdOptional(t *testing.T) {
	d := mustParse(t, []byte(edit(t, base, "    threshold: 0.8\n", "")))
	zero := mustParse(t, []byte(edit(t, base, "threshold: 0.8", "threshold: 0")))
	for _, st := range d.Steps {
		if st.Type == definition.TypeFaceMatch && st.Threshold != nil {
			t.Errorf("step %s threshold = %v, want nil", st.ID, *st.Threshold)
		}
	}
	if strings.Contains(string(d.Canonical()), "threshold") {
		t.Errorf("Canonical() = %s, want no threshold", d.Canonical())
	}
	if d.Hash() == zero.Hash() {
		t.Error("a step without threshold hashes like one with threshold 0")
	}
}

func TestHashChangesWithContent(t *testing.T) {
	a := mustParse(t, []byte(base))
	b := mustParse(t, []byte(edit(t, base, "threshold: 0.8", "threshold: 0.81")))
	c := mustParse(t, []byte(edit(t, base, "version: 1", "version: 2")))
	if a.Hash() == b.Hash() || a.Hash() == c.Hash() {
		t.Errorf("Hash() equal for different definitions: %s %s %s", a.Hash(), b.Hash(), c.Hash())
	}
	reordered := "version: 1\nid: kyc\n" + strings.TrimPrefix(strings.TrimPrefix(base, "id: kyc\n"), "version: 1\n")
	if d := mustParse(t, []byte(reordered)); d.Hash() != a.Hash() {
		t.Errorf("Hash() differs when only field order differs")
	}
}

func TestUnmarshalJSONRejects(t *testing.T) {
	var d definition.Definition
	err := json.Unmarshal([]byte(`{"id":"x"}`), &d)
	if len(definition.Problems(err)) == 0 {
		t.Errorf("json.Unmarshal(invalid definition) = %v, want problems", err)
	}
}

// problemCase is a document and the exact problems Parse reports for it.
type problemCase struct {
	name string
	doc  string
	want []string
}

func problemCases(t testing.TB) []problemCase {
	e := func(old, new string) string { return edit(t, base, old, new) }
	many := strings.Repeat("  - {id: s, type: selfie, next: s}\n", definition.MaxSteps+1)
	return []problemCase{
		// Fields.
		{"threshold above 1", e("threshold: 0.8", "threshold: 1.5"),
			[]string{"steps[2].threshold: must be between 0 and 1 (line 15, column 16)"}},
		{"threshold NaN", e("threshold: 0.8", "threshold: .nan"),
			[]string{"steps[2].threshold: must be between 0 and 1 (line 15, column 16)"}},
		{"threshold a string", e("threshold: 0.8", "threshold: high"),
			[]string{"steps[2].threshold: must be a number, not a string (line 15, column 16)"}},
		{"unknown top-level field", e("name: KYC", "nam: KYC"),
			[]string{"name: required (line 1, column 1)", "nam: unknown field (line 3, column 1)"}},
		{"unknown step field", e("    next: match", "    nxt: match"),
			[]string{"steps[1].next: required (line 10, column 5)", "steps[1].nxt: unknown field (line 12, column 5)"}},
		{"field of another step type", e("    next: match", "    threshold: 1"),
			[]string{"steps[1].next: required (line 10, column 5)", "steps[1].threshold: not a field of selfie steps (line 12, column 16)"}},
		{"next on a decision", e("    decision: approved", "    next: ko"),
			[]string{"steps[3].decision: required (line 18, column 5)", "steps[3].next: not a field of decision steps (line 20, column 11)"}},
		{"duplicate field", e("    next: match", "    next: ok\n    next: match"),
			[]string{"steps[1].next: duplicate field (line 13, column 5)"}},
		{"invalid step id", e("  - id: selfie", "  - id: Selfie"),
			[]string{`steps[1].id: "Selfie" is not a valid id: use a lowercase letter, then up to 63 lowercase letters, digits, '_' or '-' (line 10, column 9)`}},
		{"id too long", e("id: kyc", "id: k"+strings.Repeat("y", 64)),
			[]string{"id: must be at most 64 characters long, is 65 (line 1, column 5)"}},
		{"id a number", e("id: kyc", "id: 12"),
			[]string{"id: must be a string, not an integer (line 1, column 5)"}},
		{"version zero", e("version: 1", "version: 0"),
			[]string{"version: must be between 1 and 2147483647 (line 2, column 10)"}},
		{"version a float", e("version: 1", "version: 1.5"),
			[]string{"version: must be an integer, not a number (line 2, column 10)"}},
		{"version a quoted number", e("version: 1", `version: "1"`),
			[]string{"version: must be an integer, not a string (line 2, column 10)"}},
		{"empty name", e("name: KYC", `name: ""`),
			[]string{"name: must not be empty (line 3, column 7)"}},
		{"name too long", e("name: KYC", "name: "+strings.Repeat("é", definition.MaxNameLen+1)),
			[]string{"name: must be at most 200 characters long, is 201 (line 3, column 7)"}},
		{"unknown step type", e("type: selfie", "type: selfy"),
			[]string{"steps[1].type: must be one of document, selfie, liveness, docreader, face_match, rule, webhook, review, decision, not \"selfy\" (line 11, column 11)"}},
		{"step not an object", e("  - id: ok\n    type: decision\n    decision: approved\n", "  - ok\n"),
			[]string{"steps[3]: must be an object, not a string (line 18, column 5)"}},
		{"steps not a list", "id: kyc\nversion: 1\nname: KYC\nstart: doc\nsteps: {}\n",
			[]string{"steps: must be a list, not an object (line 5, column 8)"}},
		{"no steps", "id: kyc\nversion: 1\nname: KYC\nstart: doc\nsteps: []\n",
			[]string{"steps: must not be empty (line 5, column 8)"}},
		{"too many steps", "id: kyc\nversion: 1\nname: KYC\nstart: s\nsteps:\n" + many,
			[]string{"steps: must have at most 100 items, has 101 (line 6, column 3)"}},
		{"not an object", "- id: kyc\n",
			[]string{"must be an object, not a list (line 1, column 1)"}},
		{"timeout not a duration", e("    next: match", "    next: match\n    timeout: 5 minutes"),
			[]string{`steps[1].timeout: "5 minutes" is not a duration such as "30s", "5m" or "48h" (line 13, column 14)`}},
		{"timeout without a unit", e("    next: match", "    next: match\n    timeout: 30"),
			[]string{`steps[1].timeout: must be a duration with a unit, such as "30s" (line 13, column 14)`}},
		{"timeout too long", e("    next: match", "    next: match\n    timeout: 721h"),
			[]string{"steps[1].timeout: must be between 1s and 720h0m0s (line 13, column 14)"}},
		{"retries out of range", e("    next: ok", "    next: ok\n    retries: 11"),
			[]string{"steps[2].retries: must be between 0 and 10 (line 18, column 14)"}},
		{"retries on a selfie", e("    next: match", "    next: match\n    retries: 1"),
			[]string{"steps[1].retries: not a field of selfie steps (line 13, column 14)"}},
		{"page listed twice", e("pages: [{side: front}]", "pages: [{side: front}, {side: front}]"),
			[]string{`steps[0].pages[1].side: page "front" is listed twice (line 8, column 35)`}},
		{"no page required", e("pages: [{side: front}]", "pages: [{side: front, required: false}]"),
			[]string{"steps[0].pages: at least one page must be required (line 8, column 12)"}},
		{"page side unknown", e("pages: [{side: front}]", "pages: [{side: inside}]"),
			[]string{`steps[0].pages[0].side: must be one of front, back, not "inside" (line 8, column 20)`}},
		{"page required not a bool", e("pages: [{side: front}]", "pages: [{side: front, required: 1}]"),
			[]string{"steps[0].pages[0].required: must be true or false, not an integer (line 8, column 37)"}},
		{"too many pages", e("pages: [{side: front}]", "pages: [{side: front}, {side: back}, {side: back}]"),
			[]string{"steps[0].pages: must have at most 2 items, has 3 (line 8, column 12)"}},
		{"decision unknown", e("decision: approved", "decision: maybe"),
			[]string{`steps[3].decision: must be one of approved, rejected, not "maybe" (line 20, column 15)`}},
		{"reason too long", e("decision: approved", "decision: approved\n    reason: "+strings.Repeat("x", definition.MaxReasonLen+1)),
			[]string{"steps[3].reason: must be at most 500 characters long, is 501 (line 21, column 13)"}},

		// Graph.
		{"unknown reference", e("on_fail: ko", "on_fail: k0"),
			[]string{`steps[2].on_fail: no step has id "k0" (line 16, column 14)`}},
		{"unknown start", e("start: doc", "start: dok"),
			[]string{`start: no step has id "dok" (line 4, column 8)`}},
		{"duplicate step id", e("  - id: ko", "  - id: ok"),
			[]string{`steps[4].id: duplicate step id "ok" (first used at line 18) (line 21, column 9)`}},
		{"unreachable step", e("    next: ok", "    next: ko"),
			[]string{`steps[3]: step "ok" is not reachable from start "doc" (line 18, column 5)`}},
		{"cycle", e("    next: ok", "    next: doc"),
			[]string{`steps[2].next: leads back to "doc", making a cycle: doc -> selfie -> match -> doc (line 17, column 11)`,
				`steps[3]: step "ok" is not reachable from start "doc" (line 18, column 5)`}},
		{"self loop", e("    next: match", "    next: selfie"),
			[]string{`steps[1].next: leads back to "selfie", making a cycle: selfie -> selfie (line 12, column 11)`,
				`steps[2]: step "match" is not reachable from start "doc" (line 13, column 5)`,
				`steps[3]: step "ok" is not reachable from start "doc" (line 18, column 5)`,
				`steps[4]: step "ko" is not reachable from start "doc" (line 21, column 5)`}},
		{"path without a decision", e("    next: ok", "    retries: 2"),
			[]string{"steps[2].next: required (line 13, column 5)"}},
		{"face match without selfie", e("    next: selfie", "    next: match"),
			[]string{`steps[1]: step "selfie" is not reachable from start "doc" (line 10, column 5)`,
				`steps[2]: face_match step "match" needs a selfie step before it on every path from start (line 13, column 5)`}},
		{"face match after liveness only", e("    type: selfie\n    next: match", "    type: liveness\n    next: match\n    on_fail: ko"),
			[]string{`steps[2]: face_match step "match" needs a selfie step before it on every path from start (line 14, column 5)`}},
		{"face match without document", e("start: doc", "start: selfie"),
			[]string{`steps[0]: step "doc" is not reachable from start "selfie" (line 6, column 5)`,
				`steps[2]: face_match step "match" needs a docreader or document step before it on every path from start (line 13, column 5)`}},
		{"face match after a selfie on one path only", `id: kyc
version: 1
name: KYC
start: doc
steps:
  - id: doc
    type: document
    pages: [{side: front}]
    next: branch
  - id: branch
    type: rule
    cases:
      - when: size(session.metadata) > 0
        next: selfie
    default:
      next: match
  - id: selfie
    type: selfie
    next: match
  - id: match
    type: face_match
    threshold: 0.8
    on_fail: ko
    next: ok
  - id: ok
    type: decision
    decision: approved
  - id: ko
    type: decision
    decision: rejected
`, []string{`steps[3]: face_match step "match" needs a selfie step before it on every path from start (line 20, column 5)`}},
		{"docreader without document", e("    type: document\n    pages: [{side: front}]", "    type: docreader\n    scenario: FullProcess"),
			[]string{`steps[0]: docreader step "doc" needs a document step before it on every path from start (line 6, column 5)`}},
		{"docreader scenario unknown", e("    type: selfie\n    next: match", "    type: docreader\n    scenario: Full"),
			[]string{"steps[1].next: required (line 10, column 5)", `steps[1].scenario: must be one of ` + strings.Join(definition.Scenarios, ", ") + `, not "Full" (line 12, column 15)`}},
		{"docreader on_fail without required_status", e("    type: selfie\n", "    type: docreader\n    scenario: Ocr\n    on_fail: ko\n"),
			[]string{"steps[1].on_fail: only a docreader step with required_status can fail; set required_status or remove on_fail (line 13, column 14)",
				`steps[2]: face_match step "match" needs a selfie step before it on every path from start (line 15, column 5)`}},
		{"docreader required_status without on_fail", e("    type: selfie\n", "    type: docreader\n    scenario: Ocr\n    required_status: ok\n"),
			[]string{"steps[1].on_fail: required (line 10, column 5)"}},
		{"review outcomes", e("    next: ok", "    next: rev") + "  - id: rev\n    type: review\n    on_approve: ko\n    on_reject: ok\n",
			[]string{`steps[5].on_approve: must name a decision step that decides approved; "ko" decides rejected (line 26, column 17)`,
				`steps[5].on_reject: must name a decision step that decides rejected; "ok" decides approved (line 27, column 16)`}},
		{"review outcome not a decision", e("    next: ok", "    next: rev") + "  - id: rev\n    type: review\n    on_approve: ok\n    on_reject: selfie\n",
			[]string{`steps[5].on_reject: must name a decision step; "selfie" is a selfie step (line 27, column 16)`,
				`steps[5].on_reject: leads back to "selfie", making a cycle: selfie -> match -> rev -> selfie (line 27, column 16)`}},
		{"webhook events", e("    next: match", "    next: hook\n  - id: hook\n    type: webhook\n    events: [session.created, review.required, session.created, session.done]\n    next: match"),
			[]string{`steps[2].events[2]: event "session.created" is listed twice (line 15, column 48)`,
				`steps[2].events[3]: must be one of session.created, session.completed, session.expired, session.error, review.required, not "session.done" (line 15, column 65)`}},

		// Rule structure.
		{"case with next and decision", strings.Replace(ruleDoc, "        decision: approved", "        decision: approved\n        next: ko", 1),
			[]string{"steps[3].cases[0].decision: set next or decision, not both (line 22, column 19)"}},
		{"case with neither", strings.Replace(ruleDoc, "        decision: approved\n", "", 1),
			[]string{"steps[3].cases[0]: set next or decision (line 21, column 9)"}},
		{"reason with next", strings.Replace(ruleDoc, "      decision: rejected", "      next: ko\n      reason: why", 1),
			[]string{"steps[3].default.reason: a reason goes with a decision, not with next (line 25, column 15)"}},
		{"rule without default", strings.Replace(ruleDoc, "    default:\n      decision: rejected\n", "", 1),
			[]string{"steps[3].default: required (line 18, column 5)"}},
		{"rule with next", strings.Replace(ruleDoc, "    default:", "    next: ok\n    default:", 1),
			[]string{"steps[3].next: not a field of rule steps (line 23, column 11)"}},
		{"case without when", strings.Replace(ruleDoc, "      - when: face_match.similarity > 0.9\n        decision", "      - decision", 1),
			[]string{"steps[3].cases[0].when: required (line 21, column 9)"}},
		{"expression too long", strings.Replace(ruleDoc, "face_match.similarity > 0.9", "face_match.similarity > 0.9"+strings.Repeat(" || false", 453), 1),
			[]string{"steps[3].cases[0].when: must be at most 4096 bytes long, is 4104 (line 21, column 15)"}},
		{"expressions too long together", manyRules(definition.MaxTotalExpressionBytes/4000+2, 4000),
			[]string{"steps[16].cases[0].when: the rule expressions of a definition must total at most 65536 bytes (line 121, column 15)"}},

		// Documents.
		{"empty", "", []string{"empty definition"}},
		{"only a comment", "# nothing\n", []string{"empty definition"}},
		{"two documents", base + "---\nid: other\n", []string{"more than one YAML document (line 24, column 1)"}},
		{"only a document marker", "---\n", []string{"must be an object, not null (line 2, column 1)"}},
		{"second document invalid", base + "---\n[\n", []string{"invalid YAML: did not find expected node content (line 26)"}},
		{"scanner error", e("name: KYC", "name: &"), []string{"invalid YAML: did not find expected alphabetic or numeric character (line 3)"}},
		{"tagged value", e("name: KYC", "name: !!binary S1lD"), []string{"name: must be a string, not a value tagged !!binary (line 3, column 7)"}},
		{"YAML syntax", e("name: KYC", "name: [KYC"), []string{"invalid YAML: did not find expected ',' or ']' (line 3)"}},
		{"alias", e("id: kyc\nversion: 1\nname: KYC", "id: &a kyc\nversion: 1\nname: *a"),
			[]string{"name: must be a string, not an alias (line 3, column 7)"}},
		{"unknown anchor", e("name: KYC", "name: *a"), []string{"invalid YAML: unknown anchor 'a' referenced"}},
		{"merge key", e("name: KYC", "<<: {name: KYC}"),
			[]string{"name: required (line 1, column 1)", "<<: unknown field (line 3, column 1)"}},
		{"too large", base + "# " + strings.Repeat("x", definition.MaxBytes), []string{fmt.Sprintf("definition is %d bytes, more than the limit of 262144", len(base)+2+definition.MaxBytes)}},
		{"JSON syntax", "{\n  \"id\": \"kyc\",\n  \"version\": 1,,\n}", []string{"invalid JSON: invalid character ',' looking for beginning of object key string (line 3, column 16)"}},
		{"JSON nested too deeply", `{"id": ` + strings.Repeat("[", 40), []string{"invalid JSON: nested more than 32 levels deep (line 1, column 40)"}},
		{"YAML nested too deeply", "id: " + strings.Repeat("[", 20000), []string{"invalid YAML: exceeded max depth of 10000"}},
		{"JSON trailing data", `{"id": "kyc"} {}`, []string{"invalid JSON: data after the JSON object (line 1, column 15)"}},
		{"JSON truncated", `{"id": "kyc", "steps": [`, []string{"invalid JSON: unexpected end of JSON input (line 1, column 25)"}},
		{"JSON fields", "{\"id\": \"kyc\", \"id\": \"x\", \"version\": 1.0, \"name\": null, \"start\": \"s\",\n \"steps\": [{\"id\": \"s\", \"type\": \"decision\", \"decision\": true}]}",
			[]string{"id: duplicate field (line 1, column 15)", "version: must be an integer, not a number (line 1, column 37)",
				"name: must be a string, not null (line 1, column 50)", "steps[0].decision: must be a string, not a boolean (line 2, column 56)"}},
	}
}

// ruleDoc is a valid definition with a rule step; the rule tests edit the
// expression on line 21.
const ruleDoc = `id: kyc
version: 1
name: KYC
start: doc
steps:
  - id: doc
    type: document
    pages: [{side: front}]
    next: selfie
  - id: selfie
    type: selfie
    next: match
  - id: match
    type: face_match
    threshold: 0.8
    on_fail: ko
    next: decide
  - id: decide
    type: rule
    cases:
      - when: face_match.similarity > 0.9
        decision: approved
    default:
      decision: rejected
  - id: ko
    type: decision
    decision: rejected
`

func TestProblems(t *testing.T) {
	mustParse(t, []byte(base))
	mustParse(t, []byte(ruleDoc))
	for _, tc := range problemCases(t) {
		t.Run(tc.name, func(t *testing.T) {
			checkProblems(t, tc.doc, tc.want)
		})
	}
}

// checkProblems checks that Parse(doc) fails with exactly the problems
// want, each a Problem's Error(), and that the error and the Problems
// agree.
func checkProblems(t *testing.T, doc string, want []string) {
	t.Helper()
	d, err := definition.Parse([]byte(doc))
	if err == nil {
		t.Fatalf("Parse succeeded, want %q", want)
	}
	if d.ID != "" || d.Steps != nil {
		t.Errorf("Parse failed but returned %+v, want the zero Definition", d)
	}
	ps := definition.Problems(err)
	got := make([]string, len(ps))
	for i, p := range ps {
		got[i] = p.Error()
		var target *definition.Problem
		if !errors.As(err, &target) {
			t.Errorf("errors.As(err, *Problem) = false")
		}
	}
	if !slices.Equal(got, want) {
		t.Errorf("Parse problems:\n  got  %q\n  want %q", got, want)
	}
	if err.Error() != strings.Join(want, "\n") {
		t.Errorf("Parse error = %q, want the problems joined by newlines", err.Error())
	}
}

func TestProblemFields(t *testing.T) {
	_, err := definition.Parse([]byte(edit(t, base, "threshold: 0.8", "threshold: 2")))
	ps := definition.Problems(fmt.Errorf("create workflow: %w", err))
	want := definition.Problem{Line: 15, Col: 16, Path: "steps[2].threshold", Msg: "must be between 0 and 1"}
	if len(ps) != 1 || *ps[0] != want {
		t.Fatalf("Problems(wrapped) = %+v, want [%+v]", ps, want)
	}
	if got := definition.Problems(errors.New("other")); got != nil {
		t.Errorf("Problems(non-problem) = %v, want nil", got)
	}
}

func TestProblemsBounded(t *testing.T) {
	var doc strings.Builder
	doc.WriteString("id: kyc\nversion: 1\nname: KYC\nstart: s0\nsteps:\n")
	for i := range definition.MaxSteps {
		fmt.Fprintf(&doc, "  - {id: s%d, type: face_match, threshold: 7, next: x, bad: 1}\n", i)
	}
	_, err := definition.Parse([]byte(doc.String()))
	ps := definition.Problems(err)
	if len(ps) != 101 || ps[100].Msg != "300 more problems not shown" {
		t.Fatalf("Parse(400 problems) reported %d, last %v", len(ps), ps[len(ps)-1])
	}
}

func TestSamePositionsInJSON(t *testing.T) {
	doc := "{\n  \"id\": \"kyc\", \"version\": 1, \"name\": \"KYC\", \"start\": \"a\",\n  \"steps\": [\n    {\"id\": \"a\", \"type\": \"face_match\", \"threshold\": 1.5, \"next\": \"a\"}\n  ]\n}\n"
	checkProblems(t, doc, []string{
		"steps[0].on_fail: required (line 4, column 5)",
		"steps[0].threshold: must be between 0 and 1 (line 4, column 52)",
	})
}

// manyRules returns a valid definition of n rule steps in a chain, each
// with one case of an expression size bytes long.
func manyRules(n, size int) string {
	var b strings.Builder
	b.WriteString("id: kyc\nversion: 1\nname: KYC\nstart: r0\nsteps:\n")
	when := strings.Repeat(" ", size-len("true")) + "true"
	for i := range n {
		fmt.Fprintf(&b, "  - id: r%d\n    type: rule\n    cases:\n      - when: '%s'\n        decision: approved\n    default:\n      next: r%d\n", i, when, i+1)
	}
	fmt.Fprintf(&b, "  - id: r%d\n    type: decision\n    decision: approved\n", n)
	return b.String()
}
