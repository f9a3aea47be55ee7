package definition

import (
	"cmp"
	"errors"
	"fmt"
	"slices"
)

// Problem is one thing wrong with a definition document. Parse returns all
// problems it finds, joined with errors.Join; [Problems] takes them apart.
type Problem struct {
	// Line and Col locate the problem in the document, from 1; both are 0
	// when the problem is about the document as a whole.
	Line, Col int
	// Path is the field path, such as "steps[2].threshold", or "" for the
	// document as a whole.
	Path string
	// Msg says what is wrong.
	Msg string
}

// Error formats the problem as "path: msg (line L, column C)".
func (p *Problem) Error() string {
	s := p.Msg
	if p.Path != "" {
		s = p.Path + ": " + s
	}
	switch {
	case p.Line > 0 && p.Col > 0:
		s += fmt.Sprintf(" (line %d, column %d)", p.Line, p.Col)
	case p.Line > 0:
		s += fmt.Sprintf(" (line %d)", p.Line)
	}
	return s
}

// Problems returns the problems in an error returned by Parse, in document
// order, or nil when err holds none.
func Problems(err error) []*Problem {
	var out []*Problem
	var walk func(error)
	walk = func(e error) {
		switch e := e.(type) {
		case *Problem:
			out = append(out, e)
		case interface{ Unwrap() []error }:
			for _, e := range e.Unwrap() {
				walk(e)
			}
		case interface{ Unwrap() error }:
			walk(e.Unwrap())
		}
	}
	if err != nil {
		walk(err)
	}
	return out
}

// maxProblems bounds the problems Parse reports for one document.
const maxProblems = 100

// problems collects the problems of one document.
type problems struct {
	list []*Problem
}

// at records a problem at a position.
func (ps *problems) at(p pos, path, format string, args ...any) {
	ps.list = append(ps.list, &Problem{Line: p.line, Col: p.col, Path: path, Msg: fmt.Sprintf(format, args...)})
}

// err sorts the problems into document order, bounds them and joins them.
func (ps *problems) err() error {
	if len(ps.list) == 0 {
		return nil
	}
	slices.SortStableFunc(ps.list, func(a, b *Problem) int {
		return cmp.Or(cmp.Compare(a.Line, b.Line), cmp.Compare(a.Col, b.Col))
	})
	list := ps.list
	if len(list) > maxProblems {
		more := len(list) - maxProblems
		list = append(list[:maxProblems:maxProblems], &Problem{Msg: fmt.Sprintf("%d more problems not shown", more)})
	}
	errs := make([]error, len(list))
	for i, p := range list {
		errs[i] = p
	}
	return errors.Join(errs...)
}

// pos is a position in the document.
type pos struct{ line, col int }
