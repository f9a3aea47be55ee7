package definition_test

import (
	"fmt"

	"github.com/idvault/idvault/internal/workflow/definition"
)

func ExampleParse() {
	_, err := definition.Parse([]byte(`id: kyc
version: 1
name: KYC
start: match
steps:
  - id: match
    type: face_match
    threshold: 1.2
    on_fail: done
    next: done
  - id: done
    type: decision
    decision: approved
`))
	for _, p := range definition.Problems(err) {
		fmt.Println(p)
	}
	// Output:
	// steps[0]: face_match step "match" needs a selfie step before it on every path from start (line 6, column 5)
	// steps[0]: face_match step "match" needs a docreader or document step before it on every path from start (line 6, column 5)
	// steps[0].threshold: must be between 0 and 1 (line 8, column 16)
}

func ExampleDefinition_Evaluate() {
	d, err := definition.Parse([]byte(`id: age-gate
version: 1
name: Age gate
start: doc
steps:
  - id: doc
    type: document
    pages: [{side: front}]
    next: read
  - id: read
    type: docreader
    scenario: FullProcess
    next: gate
  - id: gate
    type: rule
    cases:
      - when: int(docreader.fields["Age"]) < 18
        decision: rejected
        reason: under 18
    default:
      decision: approved
`))
	if err != nil {
		fmt.Println(err)
		return
	}
	next, decision, reason, err := d.Evaluate("gate", map[string]any{
		definition.VarDocReaderFields: map[string]string{"Age": "16"},
	})
	fmt.Printf("next=%q decision=%q reason=%q err=%v\n", next, decision, reason, err)
	// Output: next="" decision="rejected" reason="under 18" err=<nil>
}
