package definition

import (
	"fmt"
	"strings"
)

// stepSet is a set of step indexes; MaxSteps fits.
type stepSet [(MaxSteps + 63) / 64]uint64

func (s *stepSet) add(i int)     { s[i/64] |= 1 << (i % 64) }
func (s stepSet) has(i int) bool { return s[i/64]&(1<<(i%64)) != 0 }
func (s *stepSet) intersect(o stepSet) {
	for w := range s {
		s[w] &= o[w]
	}
}

// edge is one transition of the step graph.
type edge struct {
	to  int
	ref int // index in decoder.refs
}

// graph is the result of the graph checks.
type graph struct {
	index    map[string]int // step id -> index
	resolved bool           // index holds every step: ids are valid and unique
	// before[i] holds the steps that run before step i on every path from
	// Start; nil when the graph is not a valid DAG or i is unreachable.
	before []*stepSet
}

// checkGraph checks step ids, references, reachability, cycles, review
// outcomes and the steps that collection data must precede.
func checkGraph(ps *problems, d Definition, dc *decoder) graph {
	g := graph{index: map[string]int{}}
	for i, s := range d.Steps {
		if s.ID == "" {
			continue
		}
		if first, dup := g.index[s.ID]; dup {
			ps.at(dc.idAt[i], fmt.Sprintf("steps[%d].id", i), "duplicate step id %q (first used at line %d)", s.ID, dc.idAt[first].line)
			dc.idsOK = false
			continue
		}
		g.index[s.ID] = i
	}
	if !dc.idsOK {
		return g
	}
	g.resolved = true
	edges := make([][]edge, len(d.Steps))
	for ri, r := range dc.refs {
		to, ok := g.index[r.target]
		if !ok {
			ps.at(r.at, r.path, "no step has id %q", r.target)
			dc.refsOK = false
			continue
		}
		if r.from >= 0 {
			edges[r.from] = append(edges[r.from], edge{to: to, ref: ri})
		}
		if r.field == "on_approve" || r.field == "on_reject" {
			checkReviewOutcome(ps, r, d.Steps[to])
		}
	}
	if !dc.idsOK || !dc.refsOK {
		return g
	}
	start := g.index[d.Start]
	reached := make([]bool, len(d.Steps))
	queue := []int{start}
	reached[start] = true
	for len(queue) > 0 {
		i := queue[0]
		queue = queue[1:]
		for _, e := range edges[i] {
			if !reached[e.to] {
				reached[e.to] = true
				queue = append(queue, e.to)
			}
		}
	}
	for i, s := range d.Steps {
		if !reached[i] {
			ps.at(dc.stepAt[i], fmt.Sprintf("steps[%d]", i), "step %q is not reachable from start %q", s.ID, d.Start)
		}
	}
	order, cyclic := topoOrder(ps, d, dc, edges)
	if cyclic {
		return g
	}
	g.before = make([]*stepSet, len(d.Steps))
	g.before[start] = &stepSet{}
	for _, i := range order {
		if !reached[i] {
			continue
		}
		through := *g.before[i]
		through.add(i)
		for _, e := range edges[i] {
			if g.before[e.to] == nil {
				b := through
				g.before[e.to] = &b
			} else {
				g.before[e.to].intersect(through)
			}
		}
	}
	for i, s := range d.Steps {
		if g.before[i] == nil {
			continue
		}
		need := func(what string, types ...StepType) {
			if !g.ranBefore(d, i, types...) {
				ps.at(dc.stepAt[i], fmt.Sprintf("steps[%d]", i), "%s step %q needs %s step before it on every path from start", s.Type, s.ID, what)
			}
		}
		switch s.Type {
		case TypeDocReader:
			need("a document", TypeDocument)
		case TypeFaceMatch:
			need("a selfie", TypeSelfie)
			need("a docreader or document", TypeDocReader, TypeDocument)
		}
	}
	return g
}

// ranBefore reports whether a step of one of types runs before step i on
// every path from Start.
func (g graph) ranBefore(d Definition, i int, types ...StepType) bool {
	for j, s := range d.Steps {
		if g.before[i].has(j) {
			for _, t := range types {
				if s.Type == t {
					return true
				}
			}
		}
	}
	return false
}

// checkReviewOutcome checks that a review outcome leads to the matching
// decision.
func checkReviewOutcome(ps *problems, r ref, target Step) {
	want := Approved
	if r.field == "on_reject" {
		want = Rejected
	}
	switch {
	case target.Type != TypeDecision:
		ps.at(r.at, r.path, "must name a decision step; %q is a %s step", target.ID, target.Type)
	case target.Decision != want && target.Decision != "":
		ps.at(r.at, r.path, "must name a decision step that decides %s; %q decides %s", want, target.ID, target.Decision)
	}
}

// topoOrder returns the steps in topological order, or reports every edge
// that closes a cycle.
func topoOrder(ps *problems, d Definition, dc *decoder, edges [][]edge) (order []int, cyclic bool) {
	const (
		unseen = iota
		onPath
		done
	)
	state := make([]int, len(d.Steps))
	var path []int
	var visit func(i int)
	visit = func(i int) {
		state[i] = onPath
		path = append(path, i)
		for _, e := range edges[i] {
			switch state[e.to] {
			case unseen:
				visit(e.to)
			case onPath:
				cyclic = true
				var ids []string
				for k := len(path) - 1; k >= 0; k-- {
					if path[k] == e.to {
						for _, j := range path[k:] {
							ids = append(ids, d.Steps[j].ID)
						}
						break
					}
				}
				ids = append(ids, d.Steps[e.to].ID)
				r := dc.refs[e.ref]
				ps.at(r.at, r.path, "leads back to %q, making a cycle: %s", d.Steps[e.to].ID, strings.Join(ids, " -> "))
			}
		}
		path = path[:len(path)-1]
		state[i] = done
		order = append(order, i)
	}
	for i := range d.Steps {
		if state[i] == unseen {
			visit(i)
		}
	}
	for l, r := 0, len(order)-1; l < r; l, r = l+1, r-1 {
		order[l], order[r] = order[r], order[l]
	}
	return order, cyclic
}
