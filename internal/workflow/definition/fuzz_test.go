package definition_test

import (
	"bytes"
	"testing"

	"github.com/idvault/idvault/internal/workflow/definition"
)

// FuzzParse checks that Parse never panics, is deterministic, reports
// failures as problems, and that what it accepts survives the round trip
// through Canonical.
func FuzzParse(f *testing.F) {
	example := readExample(f)
	f.Add(example)
	f.Add(mustParse(f, example).Canonical())
	f.Add([]byte(base))
	f.Add([]byte(ruleDoc))
	for _, tc := range problemCases(f) {
		if len(tc.doc) <= 8<<10 {
			f.Add([]byte(tc.doc))
		}
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		d, err := definition.Parse(data)
		again, err2 := definition.Parse(data)
		if (err == nil) != (err2 == nil) || (err != nil && err.Error() != err2.Error()) {
			t.Fatalf("Parse not deterministic: %v, then %v", err, err2)
		}
		if err != nil {
			ps := definition.Problems(err)
			if len(ps) == 0 {
				t.Fatalf("Parse error %v holds no problems", err)
			}
			for _, p := range ps {
				if p.Msg == "" || p.Line < 0 || p.Col < 0 {
					t.Fatalf("Parse problem %+v", p)
				}
			}
			return
		}
		c := d.Canonical()
		if !bytes.Equal(c, again.Canonical()) {
			t.Fatalf("Canonical not deterministic")
		}
		round, err := definition.Parse(c)
		if err != nil {
			t.Fatalf("Parse(Canonical()) = %v\ncanonical: %s", err, c)
		}
		if rc := round.Canonical(); !bytes.Equal(rc, c) {
			t.Fatalf("Parse(Canonical()).Canonical() = %s, want %s", rc, c)
		}
		for _, s := range d.Steps {
			if s.Type == definition.TypeRule {
				_, _, _, _ = d.Evaluate(s.ID, nil) // must not panic; failing for want of variables is fine
			}
		}
	})
}
