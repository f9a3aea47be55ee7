package definition_test

import (
	"fmt"
	"strings"
	"testing"

	"github.com/idvault/idvault/internal/workflow/definition"
)

func BenchmarkParse(b *testing.B) {
	example := readExample(b)
	inputs := []struct {
		name string
		data []byte
	}{
		{"yaml", example},
		{"canonical-json", mustParse(b, example).Canonical()},
		{"largest-rules", largestRules()},
	}
	for _, in := range inputs {
		b.Run(in.name, func(b *testing.B) {
			b.SetBytes(int64(len(in.data)))
			b.ReportAllocs()
			for b.Loop() {
				if _, err := definition.Parse(in.data); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// BenchmarkEvaluate runs the example's rule with variables under which
// every case is evaluated and the default applies.
func BenchmarkEvaluate(b *testing.B) {
	d := mustParse(b, readExample(b))
	vars := exampleVars()
	b.Run("serial", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			if next, _, _, err := d.Evaluate("checks", vars); err != nil || next != "approved" {
				b.Fatal(next, err)
			}
		}
	})
	b.Run("parallel", func(b *testing.B) {
		b.ReportAllocs()
		b.RunParallel(func(pb *testing.PB) {
			for pb.Next() {
				if next, _, _, err := d.Evaluate("checks", vars); err != nil || next != "approved" {
					b.Error(next, err)
					return
				}
			}
		})
	})
}

// largestRules returns a definition whose rules have the longest
// expressions and as many as MaxTotalExpressionBytes allows: the most CEL a
// definition can make Parse compile.
func largestRules() []byte {
	var b strings.Builder
	b.WriteString("id: kyc\nversion: 1\nname: KYC\nstart: r0\nsteps:\n")
	expr := "session.metadata.exists(k, k.matches('^[a-z]+$') && k.size() > 3)" +
		strings.Repeat(" || session.metadata.exists(k, k.startsWith('abc'))", 70)
	i := 0
	for ; (i+1)*len(expr) <= definition.MaxTotalExpressionBytes; i++ {
		fmt.Fprintf(&b, "  - id: r%d\n    type: rule\n    cases:\n      - when: \"%s\"\n        decision: approved\n    default:\n      next: r%d\n", i, expr, i+1)
	}
	fmt.Fprintf(&b, "  - id: r%d\n    type: decision\n    decision: approved\n", i)
	return []byte(b.String())
}
