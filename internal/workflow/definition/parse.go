package definition

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"math"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"gopkg.in/yaml.v3"
)

// idPattern is the pattern of definition and step ids.
var idPattern = regexp.MustCompile(`^[a-z][a-z0-9_-]{0,63}$`)

// Parse reads a definition from YAML or JSON and validates it: its fields,
// its step graph and its rules. On failure the error joins one [*Problem]
// per thing wrong, in document order, and the Definition is zero. Parse is
// deterministic and safe for concurrent use.
func Parse(data []byte) (Definition, error) {
	if len(data) > MaxBytes {
		return Definition{}, errors.Join(&Problem{Msg: fmt.Sprintf("definition is %d bytes, more than the limit of %d", len(data), MaxBytes)})
	}
	var root *yaml.Node
	var p *Problem
	if isJSON(data) {
		root, p = jsonNode(data)
	} else {
		root, p = yamlNode(data)
	}
	if p != nil {
		return Definition{}, errors.Join(p)
	}
	var ps problems
	dc := decoder{ps: &ps, idsOK: true, refsOK: true}
	d := dc.definition(root)
	g := checkGraph(&ps, d, &dc)
	rules := compileRules(&ps, d, &dc, g)
	if err := ps.err(); err != nil {
		return Definition{}, err
	}
	d.compiled = &compiled{index: g.index, rules: rules}
	return d, nil
}

// yamlLineError matches the errors of yaml.v3 that name a line.
var yamlLineError = regexp.MustCompile(`^yaml: line (\d+): (.*)$`)

// yamlNode reads data as one YAML document and returns its root node.
func yamlNode(data []byte) (*yaml.Node, *Problem) {
	dec := yaml.NewDecoder(bytes.NewReader(data))
	var doc yaml.Node
	if err := dec.Decode(&doc); err != nil {
		if errors.Is(err, io.EOF) {
			return nil, &Problem{Msg: "empty definition"}
		}
		return nil, yamlProblem(err)
	}
	var extra yaml.Node
	switch err := dec.Decode(&extra); {
	case err == nil:
		return nil, &Problem{Line: extra.Line, Col: extra.Column, Msg: "more than one YAML document"}
	case !errors.Is(err, io.EOF):
		return nil, yamlProblem(err)
	}
	if len(doc.Content) != 1 {
		return nil, &Problem{Msg: "empty definition"}
	}
	return doc.Content[0], nil
}

// yamlParserProblems are the messages of yaml.v3's parser errors, whose
// lines it numbers from 0 (those of its scanner's errors from 1). The line
// is that of the construct the problem is in when there is one.
var yamlParserProblems = []string{
	"did not find expected ',' or ']'", "did not find expected ',' or '}'", "did not find expected '-' indicator",
	"did not find expected <document start>", "did not find expected key", "did not find expected node content",
	"found duplicate %TAG directive", "found duplicate %YAML directive", "found incompatible YAML document",
	"found undefined tag handle",
}

func yamlProblem(err error) *Problem {
	if m := yamlLineError.FindStringSubmatch(err.Error()); m != nil {
		line, _ := strconv.Atoi(m[1]) // the pattern allows only digits; a line past MaxInt reads as 0
		if slices.Contains(yamlParserProblems, m[2]) {
			line++
		}
		return &Problem{Line: line, Msg: "invalid YAML: " + m[2]}
	}
	return &Problem{Msg: "invalid YAML: " + strings.TrimPrefix(err.Error(), "yaml: ")}
}

// ref is one reference from a field to a step.
type ref struct {
	from   int // index of the step the field belongs to; -1 for start
	path   string
	at     pos
	target string
	field  string // the field name: start, next, on_fail, on_approve, on_reject
}

// expr is one rule expression to compile.
type expr struct {
	step, cas int
	path      string
	at        pos
	text      string
}

// decoder walks a node tree into a Definition and records what the graph
// and rule checks need.
type decoder struct {
	ps    *problems
	refs  []ref
	exprs []expr
	// exprBytes is the length of the expressions in exprs, or more than
	// MaxTotalExpressionBytes once they exceeded it.
	exprBytes int
	stepAt    []pos // position of each step
	idAt      []pos // position of each step's id
	// idsOK says every step was decoded with a valid id and type, so
	// references can be resolved; refsOK says every reference a step must
	// have was decoded, so the graph is complete and can be checked.
	idsOK, refsOK bool
}

// fields is a decoded mapping node.
type fields struct {
	path string
	node *yaml.Node
	vals map[string]*yaml.Node
	keys []string // in document order
}

func join(path, name string) string {
	if path == "" {
		return name
	}
	return path + "." + name
}

func at(n *yaml.Node) pos { return pos{line: n.Line, col: n.Column} }

// kindName names a node kind for messages.
func kindName(n *yaml.Node) string {
	switch n.Kind {
	case yaml.MappingNode:
		return "an object"
	case yaml.SequenceNode:
		return "a list"
	case yaml.AliasNode:
		return "an alias"
	case yaml.ScalarNode:
		switch n.Tag {
		case "!!str":
			return "a string"
		case "!!int":
			return "an integer"
		case "!!float":
			return "a number"
		case "!!bool":
			return "a boolean"
		case "!!null":
			return "null"
		}
		return "a value tagged " + n.Tag
	}
	return "a document"
}

// mapping decodes an object node, reporting duplicate fields and fields not
// in known.
func (dc *decoder) mapping(n *yaml.Node, path string, known []string) (*fields, bool) {
	if n.Kind != yaml.MappingNode {
		dc.ps.at(at(n), path, "must be an object, not %s", kindName(n))
		return nil, false
	}
	f := &fields{path: path, node: n, vals: map[string]*yaml.Node{}}
	for i := 0; i+1 < len(n.Content); i += 2 {
		k, v := n.Content[i], n.Content[i+1]
		if k.Kind != yaml.ScalarNode {
			dc.ps.at(at(k), path, "field names must be strings, not %s", kindName(k))
			continue
		}
		name := k.Value
		if _, dup := f.vals[name]; dup {
			dc.ps.at(at(k), join(path, name), "duplicate field")
			dc.refsOK = false // which value was meant is unknown, so is the graph
			continue
		}
		if !slices.Contains(known, name) {
			dc.ps.at(at(k), join(path, name), "unknown field")
			continue
		}
		f.vals[name] = v
		f.keys = append(f.keys, name)
	}
	return f, true
}

// missing reports a required field that is absent.
func (dc *decoder) missing(f *fields, name string) {
	dc.ps.at(at(f.node), join(f.path, name), "required")
}

// str decodes a string field; it reports the field when required and
// absent or empty, or when longer than maxLen characters.
func (dc *decoder) str(f *fields, name string, required bool, maxLen int) (string, bool) {
	n, ok := f.vals[name]
	if !ok {
		if required {
			dc.missing(f, name)
		}
		return "", false
	}
	return dc.strNode(n, join(f.path, name), required, maxLen)
}

func (dc *decoder) strNode(n *yaml.Node, path string, required bool, maxLen int) (string, bool) {
	if n.Kind != yaml.ScalarNode || n.Tag != "!!str" {
		dc.ps.at(at(n), path, "must be a string, not %s", kindName(n))
		return "", false
	}
	switch l := utf8.RuneCountInString(n.Value); {
	case l == 0 && required:
		dc.ps.at(at(n), path, "must not be empty")
		return "", false
	case l > maxLen:
		dc.ps.at(at(n), path, "must be at most %d characters long, is %d", maxLen, l)
		return "", false
	}
	return n.Value, true
}

// id decodes a required id field.
func (dc *decoder) id(f *fields, name string) (string, bool) {
	s, ok := dc.str(f, name, true, 64)
	if !ok {
		return "", false
	}
	if !idPattern.MatchString(s) {
		dc.ps.at(at(f.vals[name]), join(f.path, name), "%q is not a valid id: use a lowercase letter, then up to 63 lowercase letters, digits, '_' or '-'", s)
		return "", false
	}
	return s, true
}

// ref decodes a required field naming a step and records the reference.
func (dc *decoder) ref(f *fields, name string, from int) string {
	s, ok := dc.id(f, name)
	if !ok {
		dc.refsOK = false
		return ""
	}
	dc.refs = append(dc.refs, ref{from: from, path: join(f.path, name), at: at(f.vals[name]), target: s, field: name})
	return s
}

// enum decodes a string field whose value is one of values.
func (dc *decoder) enum(f *fields, name string, required bool, values []string) string {
	n, ok := f.vals[name]
	if !ok {
		if required {
			dc.missing(f, name)
		}
		return ""
	}
	return dc.enumNode(n, join(f.path, name), values)
}

func (dc *decoder) enumNode(n *yaml.Node, path string, values []string) string {
	s, ok := dc.strNode(n, path, true, 64)
	if !ok {
		return ""
	}
	if !slices.Contains(values, s) {
		dc.ps.at(at(n), path, "must be one of %s, not %q", strings.Join(values, ", "), s)
		return ""
	}
	return s
}

// integer decodes an integer field in [lo, hi].
func (dc *decoder) integer(f *fields, name string, required bool, lo, hi int) int {
	n, ok := f.vals[name]
	if !ok {
		if required {
			dc.missing(f, name)
		}
		return 0
	}
	path := join(f.path, name)
	var v int64
	if n.Kind != yaml.ScalarNode || n.Tag != "!!int" || n.Decode(&v) != nil {
		dc.ps.at(at(n), path, "must be an integer, not %s", kindName(n))
		return 0
	}
	if v < int64(lo) || v > int64(hi) {
		dc.ps.at(at(n), path, "must be between %d and %d", lo, hi)
		return 0
	}
	return int(v)
}

// boolean decodes a boolean field, def when absent.
func (dc *decoder) boolean(f *fields, name string, def bool) bool {
	n, ok := f.vals[name]
	if !ok {
		return def
	}
	var v bool
	if n.Kind != yaml.ScalarNode || n.Tag != "!!bool" || n.Decode(&v) != nil {
		dc.ps.at(at(n), join(f.path, name), "must be true or false, not %s", kindName(n))
		return def
	}
	return v
}

// list decodes a list field of 1 to max items.
func (dc *decoder) list(f *fields, name string, maxItems int) []*yaml.Node {
	n, ok := f.vals[name]
	if !ok {
		dc.missing(f, name)
		return nil
	}
	path := join(f.path, name)
	if n.Kind != yaml.SequenceNode {
		dc.ps.at(at(n), path, "must be a list, not %s", kindName(n))
		return nil
	}
	switch {
	case len(n.Content) == 0:
		dc.ps.at(at(n), path, "must not be empty")
		return nil
	case len(n.Content) > maxItems:
		dc.ps.at(at(n), path, "must have at most %d items, has %d", maxItems, len(n.Content))
		return nil
	}
	return n.Content
}

var definitionFields = []string{"id", "version", "name", "description", "start", "steps"}

func (dc *decoder) definition(root *yaml.Node) Definition {
	var d Definition
	f, ok := dc.mapping(root, "", definitionFields)
	if !ok {
		dc.idsOK, dc.refsOK = false, false
		return d
	}
	d.ID, _ = dc.id(f, "id")
	d.Version = dc.integer(f, "version", true, 1, math.MaxInt32)
	d.Name, _ = dc.str(f, "name", true, MaxNameLen)
	d.Description, _ = dc.str(f, "description", false, MaxTextLen)
	d.Start = dc.ref(f, "start", -1)
	steps := dc.list(f, "steps", MaxSteps)
	if steps == nil {
		dc.idsOK, dc.refsOK = false, false
	}
	d.Steps = make([]Step, len(steps))
	dc.stepAt = make([]pos, len(steps))
	dc.idAt = make([]pos, len(steps))
	for i, n := range steps {
		d.Steps[i] = dc.step(n, i)
	}
	return d
}

// stepFields lists the fields each step type has besides id and type.
var stepFields = map[StepType][]string{
	TypeDocument:  {"next", "timeout", "pages"},
	TypeSelfie:    {"next", "timeout"},
	TypeLiveness:  {"next", "on_fail", "timeout", "retries"},
	TypeDocReader: {"next", "on_fail", "timeout", "retries", "scenario", "required_status"},
	TypeFaceMatch: {"next", "on_fail", "timeout", "retries", "threshold"},
	TypeRule:      {"cases", "default"},
	TypeWebhook:   {"next", "timeout", "retries", "events"},
	TypeReview:    {"timeout", "instructions", "on_approve", "on_reject"},
	TypeDecision:  {"decision", "reason"},
}

// allStepFields is every field of any step type.
var allStepFields = func() []string {
	all := []string{"id", "type"}
	for _, t := range stepTypes {
		for _, name := range stepFields[t] {
			if !slices.Contains(all, name) {
				all = append(all, name)
			}
		}
	}
	return all
}()

func typeNames() []string {
	names := make([]string, len(stepTypes))
	for i, t := range stepTypes {
		names[i] = string(t)
	}
	return names
}

func (dc *decoder) step(n *yaml.Node, i int) Step {
	var s Step
	path := fmt.Sprintf("steps[%d]", i)
	dc.stepAt[i] = at(n)
	dc.idAt[i] = at(n)
	f, ok := dc.mapping(n, path, allStepFields)
	if !ok {
		dc.idsOK = false
		return s
	}
	id, ok := dc.id(f, "id")
	if !ok {
		dc.idsOK = false
	} else {
		dc.idAt[i] = at(f.vals["id"])
	}
	s.ID = id
	typ := StepType(dc.enum(f, "type", true, typeNames()))
	if typ == "" {
		dc.idsOK = false
		return s
	}
	s.Type = typ
	for _, name := range f.keys {
		if name != "id" && name != "type" && !slices.Contains(stepFields[typ], name) {
			dc.ps.at(at(f.vals[name]), join(path, name), "not a field of %s steps", typ)
			delete(f.vals, name)
		}
	}
	has := func(name string) bool { return slices.Contains(stepFields[typ], name) }
	if has("next") {
		s.Next = dc.ref(f, "next", i)
	}
	if has("timeout") {
		s.Timeout = dc.timeout(f)
	}
	if has("retries") {
		s.Retries = dc.integer(f, "retries", false, 0, MaxRetries)
	}
	switch typ {
	case TypeDocument:
		s.Pages = dc.pages(f)
	case TypeLiveness:
		s.OnFail = dc.ref(f, "on_fail", i)
	case TypeDocReader:
		s.Scenario = dc.enum(f, "scenario", true, Scenarios)
		s.RequiredStatus = dc.enum(f, "required_status", false, []string{StatusOK, StatusNotError})
		_, statusGiven := f.vals["required_status"]
		_, onFailGiven := f.vals["on_fail"]
		switch {
		case statusGiven:
			s.OnFail = dc.ref(f, "on_fail", i)
		case onFailGiven:
			dc.ps.at(at(f.vals["on_fail"]), join(path, "on_fail"), "only a docreader step with required_status can fail; set required_status or remove on_fail")
		}
	case TypeFaceMatch:
		s.Threshold = dc.threshold(f)
		s.OnFail = dc.ref(f, "on_fail", i)
	case TypeRule:
		s.Cases, s.Default = dc.rule(f, i)
	case TypeWebhook:
		s.Events = dc.events(f)
	case TypeReview:
		s.Instructions, _ = dc.str(f, "instructions", false, MaxTextLen)
		s.OnApprove = dc.ref(f, "on_approve", i)
		s.OnReject = dc.ref(f, "on_reject", i)
	case TypeDecision:
		s.Decision = dc.enum(f, "decision", true, []string{Approved, Rejected})
		s.Reason, _ = dc.str(f, "reason", false, MaxReasonLen)
	}
	return s
}

func (dc *decoder) timeout(f *fields) time.Duration {
	path := join(f.path, "timeout")
	if n, ok := f.vals["timeout"]; ok && n.Kind == yaml.ScalarNode && (n.Tag == "!!int" || n.Tag == "!!float") {
		dc.ps.at(at(n), path, "must be a duration with a unit, such as \"%ss\"", n.Value)
		return 0
	}
	s, ok := dc.str(f, "timeout", false, 64)
	if !ok {
		return 0
	}
	d, err := time.ParseDuration(s)
	if err != nil {
		dc.ps.at(at(f.vals["timeout"]), path, "%q is not a duration such as \"30s\", \"5m\" or \"48h\"", s)
		return 0
	}
	if d < MinTimeout || d > MaxTimeout {
		dc.ps.at(at(f.vals["timeout"]), path, "must be between %s and %s", MinTimeout, MaxTimeout)
		return 0
	}
	return d
}

// threshold returns the threshold of a face_match step, nil when the
// step leaves it to the platform.
func (dc *decoder) threshold(f *fields) *float64 {
	n, ok := f.vals["threshold"]
	if !ok {
		return nil
	}
	path := join(f.path, "threshold")
	var v float64
	if n.Kind != yaml.ScalarNode || (n.Tag != "!!float" && n.Tag != "!!int") || n.Decode(&v) != nil {
		dc.ps.at(at(n), path, "must be a number, not %s", kindName(n))
		return nil
	}
	if !(v >= 0 && v <= 1) { // also rejects NaN
		dc.ps.at(at(n), path, "must be between 0 and 1")
		return nil
	}
	return &v
}

func (dc *decoder) pages(f *fields) []Page {
	items := dc.list(f, "pages", 2)
	var pages []Page
	anyRequired := false
	for j, n := range items {
		pf, ok := dc.mapping(n, fmt.Sprintf("%s.pages[%d]", f.path, j), []string{"side", "required"})
		if !ok {
			continue
		}
		side := dc.enum(pf, "side", true, []string{SideFront, SideBack})
		if side != "" && slices.ContainsFunc(pages, func(p Page) bool { return p.Side == side }) {
			dc.ps.at(at(pf.vals["side"]), join(pf.path, "side"), "page %q is listed twice", side)
		}
		p := Page{Side: side, Required: dc.boolean(pf, "required", true)}
		anyRequired = anyRequired || p.Required
		pages = append(pages, p)
	}
	if len(pages) > 0 && !anyRequired {
		dc.ps.at(at(f.vals["pages"]), join(f.path, "pages"), "at least one page must be required")
	}
	return pages
}

func (dc *decoder) events(f *fields) []string {
	items := dc.list(f, "events", len(Events))
	var events []string
	for j, n := range items {
		path := fmt.Sprintf("%s.events[%d]", f.path, j)
		e := dc.enumNode(n, path, Events)
		if e == "" {
			continue
		}
		if slices.Contains(events, e) {
			dc.ps.at(at(n), path, "event %q is listed twice", e)
			continue
		}
		events = append(events, e)
	}
	return events
}

var caseFields = []string{"when", "next", "decision", "reason"}

func (dc *decoder) rule(f *fields, i int) ([]Case, Outcome) {
	var cases []Case
	items := dc.list(f, "cases", MaxCases)
	if items == nil {
		dc.refsOK = false
	}
	for j, n := range items {
		cf, ok := dc.mapping(n, fmt.Sprintf("%s.cases[%d]", f.path, j), caseFields)
		if !ok {
			dc.refsOK = false
			continue
		}
		var c Case
		when, ok := dc.str(cf, "when", true, math.MaxInt)
		switch {
		case !ok: // str reported it
		case len(when) > MaxExpressionBytes:
			dc.ps.at(at(cf.vals["when"]), join(cf.path, "when"), "must be at most %d bytes long, is %d", MaxExpressionBytes, len(when))
		case dc.exprBytes+len(when) > MaxTotalExpressionBytes:
			if dc.exprBytes <= MaxTotalExpressionBytes {
				dc.ps.at(at(cf.vals["when"]), join(cf.path, "when"), "the rule expressions of a definition must total at most %d bytes", MaxTotalExpressionBytes)
			}
			dc.exprBytes = MaxTotalExpressionBytes + 1
		default:
			dc.exprBytes += len(when)
			c.When = when
			dc.exprs = append(dc.exprs, expr{step: i, cas: j, path: join(cf.path, "when"), at: at(cf.vals["when"]), text: when})
		}
		c.Outcome = dc.outcome(cf, i)
		cases = append(cases, c)
	}
	var def Outcome
	n, ok := f.vals["default"]
	if !ok {
		dc.missing(f, "default")
		dc.refsOK = false
		return cases, def
	}
	df, ok := dc.mapping(n, join(f.path, "default"), caseFields[1:])
	if !ok {
		dc.refsOK = false
		return cases, def
	}
	return cases, dc.outcome(df, i)
}

// outcome decodes the next, decision and reason fields of a case or
// default: exactly one of next and decision, and a reason only with a
// decision.
func (dc *decoder) outcome(f *fields, i int) Outcome {
	var o Outcome
	_, hasNext := f.vals["next"]
	_, hasDecision := f.vals["decision"]
	switch {
	case hasNext && hasDecision:
		dc.ps.at(at(f.vals["decision"]), join(f.path, "decision"), "set next or decision, not both")
		dc.refsOK = false
	case hasNext:
		o.Next = dc.ref(f, "next", i)
		if r, ok := f.vals["reason"]; ok {
			dc.ps.at(at(r), join(f.path, "reason"), "a reason goes with a decision, not with next")
		}
	case hasDecision:
		o.Decision = dc.enum(f, "decision", true, []string{Approved, Rejected})
		o.Reason, _ = dc.str(f, "reason", false, MaxReasonLen)
	default:
		dc.ps.at(at(f.node), f.path, "set next or decision")
		dc.refsOK = false
	}
	return o
}
