package definition

import (
	"errors"
	"fmt"
	"sync"

	"github.com/google/cel-go/cel"
	celast "github.com/google/cel-go/common/ast"
	"github.com/google/cel-go/common/operators"
	"github.com/google/cel-go/common/types"
)

// MaxRuleCost is the CEL cost limit of one rule expression evaluation
// (cel.CostLimit): a rough count of the operations it performs. An
// evaluation that exceeds it fails.
const MaxRuleCost = 100_000

// maxExprDepth bounds the nesting of a rule expression.
const maxExprDepth = 32

// The variables a rule can read. Each names its CEL type and the Go value
// the engine passes for it to [Definition.Evaluate].
const (
	// VarSessionMetadata is map(string, dyn): the session's metadata as
	// given by the business (Go: map[string]any from JSON).
	VarSessionMetadata = "session.metadata"
	// VarDocReaderOverallStatus is int: DocReader's Status.overallStatus
	// (0 a check failed, 1 all passed, 2 not done).
	VarDocReaderOverallStatus = "docreader.overallStatus"
	// VarDocReaderDocumentType is string: the recognized document's name
	// (DocumentType result, OneCandidate.DocumentName).
	VarDocReaderDocumentType = "docreader.documentType"
	// VarDocReaderFields is map(string, string): the Text result's fields,
	// field name to value.
	VarDocReaderFields = "docreader.fields"
	// VarDocReaderPassed is bool: whether the docreader step's
	// required_status was met (true when it has none).
	VarDocReaderPassed = "docreader.passed"
	// VarFaceMatchSimilarity is double: the similarity, 0 to 1, of the
	// document portrait and the live face.
	VarFaceMatchSimilarity = "face_match.similarity"
	// VarFaceMatchPassed is bool: whether the similarity reached the
	// step's threshold.
	VarFaceMatchPassed = "face_match.passed"
	// VarLivenessPassed is bool: whether FaceAPI confirmed liveness
	// (transaction status 0).
	VarLivenessPassed = "liveness.passed"
	// VarSteps is map(string, map(string, string)): for each step that
	// ran, by id, its "status" (StepCompleted, StepPassed or StepFailed).
	// Rules read it as steps.<id>.status or steps["<id>"].status.
	VarSteps = "steps"
)

// Variable describes a variable rules can read.
type Variable struct {
	// Name is the variable as written in an expression and as the key
	// of the vars map passed to Evaluate.
	Name string
	// Type is its CEL type.
	Type string
	// Step is the type of step that produces it; "" when the variable is
	// always available.
	Step StepType
}

var ruleVariables = []struct {
	name string
	typ  *cel.Type
	step StepType
}{
	{VarSessionMetadata, cel.MapType(cel.StringType, cel.DynType), ""},
	{VarDocReaderOverallStatus, cel.IntType, TypeDocReader},
	{VarDocReaderDocumentType, cel.StringType, TypeDocReader},
	{VarDocReaderFields, cel.MapType(cel.StringType, cel.StringType), TypeDocReader},
	{VarDocReaderPassed, cel.BoolType, TypeDocReader},
	{VarFaceMatchSimilarity, cel.DoubleType, TypeFaceMatch},
	{VarFaceMatchPassed, cel.BoolType, TypeFaceMatch},
	{VarLivenessPassed, cel.BoolType, TypeLiveness},
	{VarSteps, cel.MapType(cel.StringType, cel.MapType(cel.StringType, cel.StringType)), ""},
}

// Variables returns the variables rules can read. A rule may read a
// variable whose Step is set only if a step of that type runs before the
// rule on every path from Start.
func Variables() []Variable {
	out := make([]Variable, len(ruleVariables))
	for i, v := range ruleVariables {
		out[i] = Variable{Name: v.name, Type: v.typ.String(), Step: v.step}
	}
	return out
}

// ruleEnv is the CEL environment of every rule: the standard library, the
// variables, and of the macros only has, all, exists and exists_one, with
// comprehensions not nested.
var ruleEnv = sync.OnceValues(func() (*cel.Env, error) {
	opts := []cel.EnvOption{
		cel.ClearMacros(),
		cel.Macros(cel.HasMacro, cel.AllMacro, cel.ExistsMacro, cel.ExistsOneMacro),
		cel.ParserExpressionSizeLimit(MaxExpressionBytes),
		cel.ParserRecursionLimit(maxExprDepth),
		cel.ASTValidators(cel.ValidateComprehensionNestingLimit(1), cel.ValidateRegexLiterals()),
		cel.RegexProgramSizeLimit(1000),
	}
	for _, v := range ruleVariables {
		opts = append(opts, cel.Variable(v.name, v.typ))
	}
	return cel.NewEnv(opts...)
})

// compiled holds what Parse prepared for the engine.
type compiled struct {
	index map[string]int   // step id -> index in Steps
	rules map[string]*rule // rule step id -> compiled rule
}

type rule struct {
	cases []compiledCase
	def   Outcome
}

type compiledCase struct {
	prg cel.Program
	out Outcome
}

// compileRules compiles and type-checks every rule expression, checks the
// variables it reads against the steps that run before it, and returns the
// compiled rules by step id.
func compileRules(ps *problems, d Definition, dc *decoder, g graph) map[string]*rule {
	rules := map[string]*rule{}
	if len(dc.exprs) == 0 {
		return rules
	}
	env, err := ruleEnv()
	if err != nil {
		ps.at(pos{}, "", "rule environment: %v", err)
		return rules
	}
	for _, e := range dc.exprs {
		a, iss := env.Compile(e.text)
		if err := iss.Err(); err != nil {
			for _, ce := range iss.Errors() {
				if l := ce.Location; l.Line() > 0 {
					ps.at(e.at, e.path, "%s (at %d:%d in the expression)", ce.Message, l.Line(), l.Column()+1)
				} else {
					ps.at(e.at, e.path, "%s", ce.Message)
				}
			}
			continue
		}
		if t := a.OutputType(); !t.IsExactType(cel.BoolType) {
			ps.at(e.at, e.path, "must be a bool expression, is %s", t)
			continue
		}
		checkUses(ps, e, a, d, g)
		prg, err := env.Program(a, cel.CostLimit(MaxRuleCost), cel.EvalOptions(cel.OptOptimize))
		if err != nil {
			ps.at(e.at, e.path, "%v", err)
			continue
		}
		s := d.Steps[e.step]
		r := rules[s.ID]
		if r == nil {
			r = &rule{def: s.Default}
			rules[s.ID] = r
		}
		r.cases = append(r.cases, compiledCase{prg: prg, out: s.Cases[e.cas].Outcome})
	}
	return rules
}

// checkUses checks that every variable an expression reads is produced by
// a step that runs before the rule on every path, and that steps is read
// only as steps.<id>.status with <id> such a step.
func checkUses(ps *problems, e expr, a *cel.Ast, d Definition, g graph) {
	native := a.NativeRep()
	refs := native.ReferenceMap()
	reported := map[string]bool{}
	report := func(key, format string, args ...any) {
		if !reported[key] {
			reported[key] = true
			ps.at(e.at, e.path, format, args...)
		}
	}
	rule := d.Steps[e.step]
	for _, n := range celast.MatchDescendants(celast.NavigateAST(native), celast.KindMatcher(celast.IdentKind)) {
		r, ok := refs[n.ID()]
		if !ok {
			continue
		}
		if r.Name == VarSteps {
			id, problem := stepsKey(n)
			if problem != "" {
				report(problem, "%s", problem)
				continue
			}
			j, ok := g.index[id]
			switch {
			case !ok && g.resolved:
				report("steps."+id, "reads steps.%s, but no step has id %q", id, id)
			case ok && g.before != nil && g.before[e.step] != nil && !g.before[e.step].has(j):
				report("steps."+id, "reads steps.%s, but step %q does not run before rule %q on every path from start", id, id, rule.ID)
			}
			continue
		}
		for _, v := range ruleVariables {
			if v.name != r.Name || v.step == "" || g.before == nil || g.before[e.step] == nil {
				continue
			}
			if !g.ranBefore(d, e.step, v.step) {
				report(v.name, "reads %s, but no %s step runs before rule %q on every path from start", v.name, v.step, rule.ID)
			}
		}
	}
}

// stepsKey returns the step id in steps.<id>.status or steps["<id>"].status
// given the ident steps, or a problem.
func stepsKey(steps celast.NavigableExpr) (id, problem string) {
	const use = `read steps as steps.<id>.status or steps["<id>"].status`
	parent, ok := steps.Parent()
	if !ok {
		return "", use
	}
	id, ok = selectKey(parent, steps.ID())
	if !ok {
		return "", use
	}
	grand, ok := parent.Parent()
	if !ok {
		return "", use
	}
	if field, ok := selectKey(grand, parent.ID()); !ok || field != "status" {
		return "", use
	}
	return id, ""
}

// selectKey returns the field that p selects from its child: the field of
// a select expression or the string constant of an index expression.
func selectKey(p celast.NavigableExpr, child int64) (string, bool) {
	switch p.Kind() {
	case celast.SelectKind:
		sel := p.AsSelect()
		if sel.Operand().ID() == child && !sel.IsTestOnly() {
			return sel.FieldName(), true
		}
	case celast.CallKind:
		call := p.AsCall()
		args := call.Args()
		if call.FunctionName() == operators.Index && len(args) == 2 && args[0].ID() == child && args[1].Kind() == celast.LiteralKind {
			if s, ok := args[1].AsLiteral().(types.String); ok {
				return string(s), true
			}
		}
	}
	return "", false
}

// Errors of Evaluate.
var (
	// ErrNotParsed means the Definition did not come from Parse.
	ErrNotParsed = errors.New("definition: not parsed")
	// ErrUnknownStep means no step has the id.
	ErrUnknownStep = errors.New("definition: unknown step")
	// ErrNotRule means the step is not a rule step.
	ErrNotRule = errors.New("definition: not a rule step")
)

// Evaluate runs rule step stepID against vars, whose keys are the
// [Variables] names (VarDocReaderOverallStatus, VarSteps, ...) and whose
// values are Go values of the documented types. The cases are tried in
// order; the first whose expression is true gives the outcome, and the
// default applies when none is. The outcome is either next, a step id, or
// decision (Approved or Rejected) with an optional reason.
//
// An expression that fails (a variable missing from vars, a value of the
// wrong type, a missing map key, the cost limit MaxRuleCost exceeded) makes
// Evaluate return an error naming the case; the engine treats it as a
// failed step. Evaluate is safe for concurrent use.
func (d Definition) Evaluate(stepID string, vars map[string]any) (next, decision, reason string, err error) {
	if d.compiled == nil {
		return "", "", "", ErrNotParsed
	}
	r, ok := d.compiled.rules[stepID]
	if !ok {
		if _, exists := d.compiled.index[stepID]; exists {
			return "", "", "", fmt.Errorf("evaluate %q: %w", stepID, ErrNotRule)
		}
		return "", "", "", fmt.Errorf("evaluate %q: %w", stepID, ErrUnknownStep)
	}
	if vars == nil {
		vars = map[string]any{}
	}
	act, err := cel.NewActivation(vars)
	if err != nil {
		return "", "", "", fmt.Errorf("evaluate %q: %w", stepID, err)
	}
	for i, c := range r.cases {
		out, _, err := c.prg.Eval(act)
		if err != nil {
			return "", "", "", fmt.Errorf("evaluate %q: cases[%d]: %w", stepID, i, err)
		}
		if out == types.True { // Parse checked that every expression is a bool

			return c.out.Next, c.out.Decision, c.out.Reason, nil
		}
	}
	return r.def.Next, r.def.Decision, r.def.Reason, nil
}
