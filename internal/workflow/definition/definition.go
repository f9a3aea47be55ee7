package definition

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"math"
	"strconv"
	"time"
)

// Limits on a definition. Parse rejects a definition that exceeds one.
const (
	// MaxBytes is the largest definition document Parse reads.
	MaxBytes = 256 << 10
	// MaxSteps is the largest number of steps in a definition.
	MaxSteps = 100
	// MaxCases is the largest number of cases in one rule step.
	MaxCases = 50
	// MaxExpressionBytes is the longest rule expression.
	MaxExpressionBytes = 4096
	// MaxTotalExpressionBytes bounds the rule expressions of a definition
	// together, and with them the time Parse spends compiling them.
	MaxTotalExpressionBytes = 64 << 10
	// MaxRetries is the largest retries value of a step.
	MaxRetries = 10
	// MaxTimeout is the longest timeout of a step.
	MaxTimeout = 30 * 24 * time.Hour
	// MinTimeout is the shortest timeout of a step.
	MinTimeout = time.Second
	// MaxNameLen is the longest name, in characters.
	MaxNameLen = 200
	// MaxTextLen is the longest description or review instructions, in
	// characters.
	MaxTextLen = 2000
	// MaxReasonLen is the longest decision reason, in characters.
	MaxReasonLen = 500
)

// StepType is the kind of a step.
type StepType string

// The step types.
const (
	// TypeDocument collects pages of an identity document.
	TypeDocument StepType = "document"
	// TypeSelfie collects a selfie.
	TypeSelfie StepType = "selfie"
	// TypeLiveness reads a FaceAPI liveness transaction (GET
	// /api/v2/liveness) by the transaction id the capture SDK reports.
	TypeLiveness StepType = "liveness"
	// TypeDocReader sends the collected document to DocReader (POST
	// /api/process) with a processing scenario.
	TypeDocReader StepType = "docreader"
	// TypeFaceMatch matches the document portrait against the live face
	// (FaceAPI POST /api/match).
	TypeFaceMatch StepType = "face_match"
	// TypeRule evaluates CEL expressions over earlier results to choose the
	// next step or a decision.
	TypeRule StepType = "rule"
	// TypeWebhook notifies the tenant's webhook subscriptions.
	TypeWebhook StepType = "webhook"
	// TypeReview waits for a verifier to approve or reject.
	TypeReview StepType = "review"
	// TypeDecision ends the session with a decision.
	TypeDecision StepType = "decision"
)

// stepTypes lists every step type in documentation order.
var stepTypes = []StepType{TypeDocument, TypeSelfie, TypeLiveness, TypeDocReader, TypeFaceMatch, TypeRule, TypeWebhook, TypeReview, TypeDecision}

// The decisions a session ends with.
const (
	Approved = "approved"
	Rejected = "rejected"
)

// The document page sides.
const (
	SideFront = "front"
	SideBack  = "back"
)

// The required overall statuses of a docreader step. DocReader reports
// Status.overallStatus as 0 (a check failed), 1 (all checks passed) or 2
// (checks were not done).
const (
	// StatusOK requires overallStatus 1.
	StatusOK = "ok"
	// StatusNotError requires overallStatus 1 or 2.
	StatusNotError = "not_error"
)

// Scenarios are the DocReader processParam.scenario values a docreader step
// accepts.
var Scenarios = []string{
	"Mrz", "Barcode", "Locate", "Ocr", "DocType", "MrzOrBarcode", "MrzOrLocate", "MrzAndLocate",
	"BarcodeAndLocate", "MrzOrOcr", "MrzOrBarcodeOrOcr", "LocateVisual_And_MrzOrOcr", "FullProcess",
	"FullAuth", "Id3Rus", "RusStamp", "OcrFree", "CreditCard", "DTC",
}

// The webhook event types a webhook step may send.
const (
	EventSessionCreated   = "session.created"
	EventSessionCompleted = "session.completed"
	EventSessionExpired   = "session.expired"
	EventSessionError     = "session.error"
	EventReviewRequired   = "review.required"
)

// Events lists the webhook event types.
var Events = []string{EventSessionCreated, EventSessionCompleted, EventSessionExpired, EventSessionError, EventReviewRequired}

// The step statuses the engine reports to rules as steps.<id>.status.
const (
	// StepCompleted is the status of a finished document, selfie, webhook
	// or rule step.
	StepCompleted = "completed"
	// StepPassed is the status of a liveness, docreader or face_match step
	// whose requirement was met.
	StepPassed = "passed"
	// StepFailed is the status of a liveness, docreader or face_match step
	// whose requirement was not met.
	StepFailed = "failed"
)

// Definition is one version of a workflow. Obtain it from [Parse]; the
// compiled rules it carries are used by [Definition.Evaluate]. A Definition
// is a value: copies share the compiled rules, which are immutable and safe
// for concurrent use. Callers MUST NOT modify a parsed Definition (its
// slices included); to change a workflow, parse a new version.
type Definition struct {
	// ID names the workflow within its tenant.
	ID string
	// Version is the version number, from 1.
	Version int
	// Name is a human-readable name.
	Name string
	// Description is optional free text.
	Description string
	// Start is the id of the first step.
	Start string
	// Steps are the steps, in the order they were written.
	Steps []Step

	compiled *compiled
}

// Step is one step of a definition. ID, Type and the fields that apply to
// Type are set; the others are zero.
type Step struct {
	// ID names the step within the definition.
	ID string
	// Type is the kind of step.
	Type StepType
	// Next is the step that follows; every type except rule, review and
	// decision has one.
	Next string
	// OnFail is the step that follows when the step's requirement is not
	// met (liveness; docreader with RequiredStatus; face_match).
	OnFail string
	// Timeout bounds one attempt of an automated step, or the wait for the
	// person or verifier; zero means the engine's default.
	Timeout time.Duration
	// Retries is how many times a failed automated step (liveness,
	// docreader, face_match, webhook) is retried; zero means none.
	Retries int

	// Pages are the pages a document step collects.
	Pages []Page
	// Scenario is the DocReader processParam.scenario of a docreader step.
	Scenario string
	// RequiredStatus is the overall status a docreader step requires
	// (StatusOK or StatusNotError), or "" for no requirement.
	RequiredStatus string
	// Threshold is the smallest similarity, 0 to 1, at which a face_match
	// step passes; nil when the definition leaves it to the platform
	// (regula.faceAPI.matchThreshold when the step runs).
	Threshold *float64
	// Cases are the cases of a rule step, tried in order.
	Cases []Case
	// Default is where a rule step goes when no case matches.
	Default Outcome
	// Events are the event types a webhook step sends.
	Events []string
	// Instructions are optional instructions shown to the verifier of a
	// review step.
	Instructions string
	// OnApprove is the decision step a review step goes to when the
	// verifier approves.
	OnApprove string
	// OnReject is the decision step a review step goes to when the
	// verifier rejects.
	OnReject string
	// Decision is the decision of a decision step: Approved or Rejected.
	Decision string
	// Reason is the optional reason of a decision step.
	Reason string
}

// Page is one page a document step collects.
type Page struct {
	// Side is SideFront or SideBack.
	Side string
	// Required says the session cannot go on without the page.
	Required bool
}

// Case is one case of a rule step: when When is true, the rule goes to the
// Outcome.
type Case struct {
	// When is a CEL expression of type bool.
	When string
	Outcome
}

// Outcome is where a rule goes: to step Next, or to a decision (Approved or
// Rejected) with a reason. Exactly one of Next and Decision is set.
type Outcome struct {
	Next     string
	Decision string
	Reason   string
}

// Step returns the step with id.
func (d Definition) Step(id string) (Step, bool) {
	if d.compiled != nil {
		i, ok := d.compiled.index[id]
		if ok {
			return d.Steps[i], true
		}
		return Step{}, false
	}
	for _, s := range d.Steps {
		if s.ID == id {
			return s, true
		}
	}
	return Step{}, false
}

// Canonical returns the definition's canonical JSON: compact, object keys in
// a fixed order, defaults written out, durations as Go duration strings.
// Parse(d.Canonical()) yields a Definition with the same Canonical. Store
// this form, and compare or hash it to tell versions apart.
func (d Definition) Canonical() []byte {
	steps := make([]map[string]any, len(d.Steps))
	for i, s := range d.Steps {
		steps[i] = canonicalStep(s)
	}
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	err := enc.Encode(canonicalDefinition{
		ID: d.ID, Version: d.Version, Name: d.Name, Description: d.Description, Start: d.Start, Steps: steps,
	})
	if err != nil {
		// Every value above is a string, a finite number, a bool, or a
		// slice or map of them, which always encode.
		panic(fmt.Sprintf("definition: canonical encoding: %v", err))
	}
	return bytes.TrimSuffix(buf.Bytes(), []byte("\n"))
}

// Hash returns the hex SHA-256 of d.Canonical().
func (d Definition) Hash() string {
	sum := sha256.Sum256(d.Canonical())
	return hex.EncodeToString(sum[:])
}

// MarshalJSON returns d.Canonical().
func (d Definition) MarshalJSON() ([]byte, error) {
	return d.Canonical(), nil
}

// UnmarshalJSON parses data with Parse and stores the result in d.
func (d *Definition) UnmarshalJSON(data []byte) error {
	parsed, err := Parse(data)
	if err != nil {
		return err
	}
	*d = parsed
	return nil
}

type canonicalDefinition struct {
	ID          string           `json:"id"`
	Version     int              `json:"version"`
	Name        string           `json:"name"`
	Description string           `json:"description,omitempty"`
	Start       string           `json:"start"`
	Steps       []map[string]any `json:"steps"`
}

// canonicalStep returns the fields of s that apply to its type; the JSON
// encoder writes map keys sorted.
func canonicalStep(s Step) map[string]any {
	m := map[string]any{"id": s.ID, "type": string(s.Type)}
	set := func(key, v string) {
		if v != "" {
			m[key] = v
		}
	}
	set("next", s.Next)
	set("on_fail", s.OnFail)
	if s.Timeout != 0 {
		m["timeout"] = s.Timeout.String()
	}
	if s.Retries != 0 {
		m["retries"] = s.Retries
	}
	switch s.Type {
	case TypeDocument:
		pages := make([]map[string]any, len(s.Pages))
		for i, p := range s.Pages {
			pages[i] = map[string]any{"side": p.Side, "required": p.Required}
		}
		m["pages"] = pages
	case TypeDocReader:
		set("scenario", s.Scenario)
		set("required_status", s.RequiredStatus)
	case TypeFaceMatch:
		switch t := s.Threshold; {
		case t == nil:
		case math.IsNaN(*t) || math.IsInf(*t, 0):
			m["threshold"] = strconv.FormatFloat(*t, 'g', -1, 64) // Parse rejects it, as it should
		default:
			m["threshold"] = *t
		}
	case TypeRule:
		cases := make([]map[string]any, len(s.Cases))
		for i, c := range s.Cases {
			cases[i] = canonicalOutcome(c.Outcome)
			cases[i]["when"] = c.When
		}
		m["cases"] = cases
		m["default"] = canonicalOutcome(s.Default)
	case TypeWebhook:
		m["events"] = s.Events
	case TypeReview:
		set("instructions", s.Instructions)
		set("on_approve", s.OnApprove)
		set("on_reject", s.OnReject)
	case TypeDecision:
		set("decision", s.Decision)
		set("reason", s.Reason)
	}
	return m
}

func canonicalOutcome(o Outcome) map[string]any {
	m := map[string]any{}
	if o.Next != "" {
		m["next"] = o.Next
	}
	if o.Decision != "" {
		m["decision"] = o.Decision
	}
	if o.Reason != "" {
		m["reason"] = o.Reason
	}
	return m
}
