package definition

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"sort"
	"strings"
	"unicode/utf8"

	"gopkg.in/yaml.v3"
)

// isJSON reports whether data is to be read as JSON: its first non-blank
// byte is '{'.
func isJSON(data []byte) bool {
	t := bytes.TrimLeft(data, " \t\r\n")
	return len(t) > 0 && t[0] == '{'
}

// jsonNode reads data as one strict JSON value and returns it as a YAML node
// tree, with the positions of its tokens, so that one walker serves both
// formats. Strings are !!str, integers !!int, other numbers !!float.
func jsonNode(data []byte) (*yaml.Node, *Problem) {
	r := jsonReader{data: data, dec: json.NewDecoder(bytes.NewReader(data)), lines: lineStarts(data)}
	r.dec.UseNumber()
	n, err := r.value()
	if err != nil {
		return nil, r.problem(err)
	}
	off := r.start()
	if _, err := r.dec.Token(); !errors.Is(err, io.EOF) {
		p := r.pos(off)
		return nil, &Problem{Line: p.line, Col: p.col, Msg: "invalid JSON: data after the JSON object"}
	}
	return n, nil
}

// maxJSONDepth bounds the nesting of a JSON document; a definition nests
// four levels deep.
const maxJSONDepth = 32

type jsonReader struct {
	data  []byte
	dec   *json.Decoder
	lines []int
	depth int
	last  struct{ off, line, col int } // the last position computed
}

// start returns the offset of the next token: the decoder's offset past
// blanks and separators.
func (r *jsonReader) start() int {
	off := int(r.dec.InputOffset())
	for off < len(r.data) && strings.IndexByte(" \t\r\n,:", r.data[off]) >= 0 {
		off++
	}
	return off
}

// pos returns the position of offset off. Positions are asked for in
// increasing order, so it counts characters from the last one asked for,
// not from the start of the line, which keeps a long line linear.
func (r *jsonReader) pos(off int) pos {
	line := sort.Search(len(r.lines), func(i int) bool { return r.lines[i] > off }) // lines[0] == 0
	from := r.lines[line-1]
	col := 1
	if r.last.line == line && r.last.off <= off {
		from, col = r.last.off, r.last.col
	}
	col += utf8.RuneCount(r.data[from:off])
	r.last.off, r.last.line, r.last.col = off, line, col
	return pos{line: line, col: col}
}

func (r *jsonReader) value() (*yaml.Node, error) {
	p := r.pos(r.start())
	tok, err := r.dec.Token()
	if err != nil {
		return nil, err
	}
	n := &yaml.Node{Line: p.line, Column: p.col}
	switch tok := tok.(type) {
	case json.Delim:
		if r.depth++; r.depth > maxJSONDepth {
			return nil, errTooDeep
		}
		defer func() { r.depth-- }()
		if tok == '{' {
			n.Kind, n.Tag = yaml.MappingNode, "!!map"
			for r.dec.More() {
				k, err := r.value()
				if err != nil {
					return nil, err
				}
				v, err := r.value()
				if err != nil {
					return nil, err
				}
				n.Content = append(n.Content, k, v)
			}
		} else {
			n.Kind, n.Tag = yaml.SequenceNode, "!!seq"
			for r.dec.More() {
				v, err := r.value()
				if err != nil {
					return nil, err
				}
				n.Content = append(n.Content, v)
			}
		}
		if _, err := r.dec.Token(); err != nil { // the closing delimiter
			return nil, err
		}
	case string:
		n.Kind, n.Tag, n.Value = yaml.ScalarNode, "!!str", tok
	case json.Number:
		n.Kind, n.Tag, n.Value = yaml.ScalarNode, "!!int", tok.String()
		if strings.ContainsAny(n.Value, ".eE") {
			n.Tag = "!!float"
		}
	case bool:
		n.Kind, n.Tag, n.Value = yaml.ScalarNode, "!!bool", fmt.Sprint(tok)
	case nil:
		n.Kind, n.Tag, n.Value = yaml.ScalarNode, "!!null", "null"
	}
	return n, nil
}

var errTooDeep = fmt.Errorf("nested more than %d levels deep", maxJSONDepth)

// problem turns a decoding error into a problem at its offset.
func (r *jsonReader) problem(err error) *Problem {
	off := int(r.dec.InputOffset())
	var se *json.SyntaxError
	if errors.As(err, &se) {
		off = int(se.Offset)
	}
	msg := err.Error()
	if errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) {
		msg = "unexpected end of JSON input"
	}
	r.last.line = 0 // off may lie before the last position
	p := r.pos(min(off, len(r.data)))
	return &Problem{Line: p.line, Col: p.col, Msg: "invalid JSON: " + msg}
}

// lineStarts returns the offset at which each line of data begins.
func lineStarts(data []byte) []int {
	starts := []int{0}
	for i, b := range data {
		if b == '\n' {
			starts = append(starts, i+1)
		}
	}
	return starts
}
