// Package definition holds the workflow definition format: the versioned
// YAML or JSON document a tenant writes to say which steps a verification
// session runs, in which order, and how it ends.
//
// [Parse] is the only way to obtain a usable [Definition]. It reads YAML or
// JSON (a document whose first non-blank byte is '{' is read as strict
// JSON), rejects unknown fields, validates every field, the step graph and
// every rule expression, and reports all problems at once: the error is an
// [errors.Join] of [*Problem] values, each naming the line, column and field
// path it is about. A Definition returned without error is a directed
// acyclic graph of steps in which every path from Start ends in a decision,
// every step is reachable, and every step that needs the data of an earlier
// step (a face match needs a portrait and a live face; a rule needs the
// results it reads) runs only after that step on every path.
//
// Rules are CEL expressions (github.com/google/cel-go). They are compiled
// and type-checked by Parse against the variables listed in [Variables];
// [Definition.Evaluate] runs the compiled programs with a cost limit
// ([MaxRuleCost]) and without the macros that build lists (map, filter) or
// nest loops (comprehensions may not be nested), so a rule written by a
// tenant cannot make a workflow process spend unbounded time.
//
// Threat model: definitions are written by tenant administrators, who are
// trusted with their own tenant's workflows but not with the platform.
// Parse therefore bounds its input and its own work ([MaxBytes],
// [MaxSteps], id and text lengths, nesting depth, [MaxExpressionBytes],
// [MaxTotalExpressionBytes]), refuses YAML aliases (no expansion bombs),
// never panics, and the rules it accepts are bounded in time.
//
// Versioning: a definition is identified by (ID, Version). Versions are
// immutable: changing a workflow means storing a new Definition with the
// same ID and Version+1. A session pins the (ID, Version) it started with
// and runs to its end on that version, whatever versions are added later.
// [Definition.Canonical] is the stable JSON form to store, and
// [Definition.Hash] its SHA-256, which identifies the content of a version.
package definition
