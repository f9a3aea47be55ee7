package sink

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"testing"
	"unicode"
	"unicode/utf8"
)

// formatter returns a sink used only to format messages.
func formatter(t testing.TB, maxSize int) *Syslog {
	t.Helper()
	s, err := NewSyslog(SyslogConfig{Address: "127.0.0.1:6514", Hostname: "h", MaxMessageSize: maxSize})
	if err != nil {
		t.Fatal(err)
	}
	s.procid = "42"
	return s
}

func TestFormatExactBytes(t *testing.T) {
	s := formatter(t, 0)
	e := Entry{Tenant: "acme", Index: 7, Time: testTime, Action: "session.signin", Outcome: "success", Data: []byte(`{ "a" : 1 }`)}
	got, err := s.appendEntry(nil, &e)
	if err != nil {
		t.Fatal(err)
	}
	msg := "<85>1 2025-03-04T05:06:07.123456Z h idvault 42 session.signin " +
		`[idvault@32473 tenant="acme" index="7" outcome="success"] ` + "\xef\xbb\xbf" + `{"a":1}`
	if want := strconv.Itoa(len(msg)) + " " + msg; string(got) != want {
		t.Errorf("appendEntry =\n%q\nwant\n%q", got, want)
	}
}

func TestFormatPRI(t *testing.T) {
	tests := []struct {
		facility string
		outcome  string
		want     string
	}{
		{"", "success", "<85>"},
		{"", "denied", "<84>"},
		{"", "error", "<83>"},
		{"", "", "<84>"},
		{"", "SUCCESS", "<84>"},
		{"auth", "success", "<37>"},
		{"local7", "error", "<187>"},
		{"user", "denied", "<12>"},
	}
	for _, tt := range tests {
		t.Run(tt.facility+"/"+tt.outcome, func(t *testing.T) {
			s, err := NewSyslog(SyslogConfig{Address: "h:1", Hostname: "h", Facility: tt.facility})
			if err != nil {
				t.Fatal(err)
			}
			got := string(s.appendHeader(nil, &Entry{Outcome: tt.outcome}))
			if !strings.HasPrefix(got, tt.want+"1 ") {
				t.Errorf("header(%s, %s) = %q, want PRI %s", tt.facility, tt.outcome, got, tt.want)
			}
		})
	}
}

// TestFormatSplitBoundary checks that a message exactly at the limit is sent
// whole and one byte more is split at character boundaries.
func TestFormatSplitBoundary(t *testing.T) {
	s := formatter(t, 1024)
	e := Entry{Tenant: "acme", Index: 1, Time: testTime, Action: "x", Outcome: "success"}
	whole, err := s.appendEntry(nil, &Entry{Tenant: e.Tenant, Index: e.Index, Time: e.Time, Action: e.Action, Outcome: e.Outcome, Data: []byte(`""`)})
	if err != nil {
		t.Fatal(err)
	}
	msgs := mustParse(t, whole)
	fill := 1024 - len(msgs[0].raw) // bytes of room left around an empty string
	e.Data = []byte(`"` + strings.Repeat("a", fill) + `"`)
	out, err := s.appendEntry(nil, &e)
	if err != nil {
		t.Fatal(err)
	}
	if msgs := mustParse(t, out); len(msgs) != 1 || len(msgs[0].raw) != 1024 {
		t.Fatalf("event filling 1024 octets exactly: %d messages, first %d octets; want 1 of 1024", len(msgs), len(msgs[0].raw))
	}
	e.Data = []byte(`"` + strings.Repeat("😀", fill/4) + "ab" + `"`)
	out, err = s.appendEntry(nil, &e)
	if err != nil {
		t.Fatal(err)
	}
	msgs = mustParse(t, out)
	checkFragments(t, s, &e, msgs)
	if len(msgs) < 2 {
		t.Fatalf("event over the limit sent as %d message(s), want a split", len(msgs))
	}
}

// checkFragments checks that msgs carry e, split or not, within the size
// limit and with the header fields sanitized.
func checkFragments(t testing.TB, s *Syslog, e *Entry, msgs []parsedMessage) {
	t.Helper()
	want, err := appendEvent(nil, e)
	if err != nil {
		t.Fatal(err)
	}
	var rebuilt []byte
	for i, m := range msgs {
		if len(m.raw) > s.maxSize {
			t.Errorf("message %d is %d octets, over %d", i, len(m.raw), s.maxSize)
		}
		if m.pri != s.facility*8+severity(e.Outcome) || m.hostname != s.hostname || m.appName != "idvault" || m.procID != s.procid {
			t.Errorf("message %d header %+v", i, m)
		}
		wantID := e.Action
		if e.Action == "" {
			wantID = "-"
		}
		if isPrintASCII(e.Action) && len(e.Action) <= 32 && m.msgID != wantID {
			t.Errorf("message %d: MSGID %q, want %q", i, m.msgID, wantID)
		}
		if len(m.sd) != 1 || m.sd[0].id != sdID {
			t.Fatalf("message %d: structured data %+v, want one %s element", i, m.sd, sdID)
		}
		p := m.sd[0].params
		if p["index"] != strconv.FormatInt(e.Index, 10) {
			t.Errorf("message %d: index %q, want %d", i, p["index"], e.Index)
		}
		for _, f := range []struct{ name, in string }{{"tenant", e.Tenant}, {"outcome", e.Outcome}} {
			if cleanText(f.in) && p[f.name] != f.in {
				t.Errorf("message %d: %s %q, want %q", i, f.name, p[f.name], f.in)
			}
			if !utf8.ValidString(p[f.name]) || strings.IndexFunc(p[f.name], unicode.IsControl) >= 0 {
				t.Errorf("message %d: %s %q holds a control character or invalid UTF-8", i, f.name, p[f.name])
			}
		}
		if len(msgs) > 1 && (p["part"] != strconv.Itoa(i+1) || p["parts"] != strconv.Itoa(len(msgs))) {
			t.Errorf("message %d: part %q of %q, want %d of %d", i, p["part"], p["parts"], i+1, len(msgs))
		}
		if len(msgs) == 1 && (p["part"] != "" || p["parts"] != "") {
			t.Errorf("unsplit message carries part %q parts %q", p["part"], p["parts"])
		}
		frag, ok := bytes.CutPrefix(m.msg, []byte(bom))
		if !ok || !utf8.Valid(frag) {
			t.Errorf("message %d: MSG %q is not BOM + UTF-8", i, m.msg)
		}
		rebuilt = append(rebuilt, frag...)
	}
	if !bytes.Equal(rebuilt, want) {
		t.Errorf("rebuilt event %q, want %q", rebuilt, want)
	}
}

func isPrintASCII(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] < 33 || s[i] > 126 {
			return false
		}
	}
	return true
}

func cleanText(s string) bool {
	return utf8.ValidString(s) && strings.IndexFunc(s, unicode.IsControl) < 0
}

func FuzzSyslogFormat(f *testing.F) {
	f.Add("acme", int64(1), "session.signin", "success", []byte(`{"a":1}`), 1024)
	f.Add("a\"]\\\n\x00", int64(0), "a b\nc\x00<13>1", "denied]\"", []byte("{\"x\":\"\\n\"}\n"), 2048)
	f.Add("t", int64(9), strings.Repeat("ü", 40), "error", []byte(`"`+strings.Repeat("東", 350)+`"`), 1024)
	f.Add("\xff\xfe", int64(3), "\xff", "\xc3", []byte(`[1, 2, {"k": null}]`), 1500)
	f.Fuzz(func(t *testing.T, tenant string, index int64, action, outcome string, data []byte, maxSize int) {
		maxSize = MinMaxMessageSize + abs(maxSize)%8192
		s := formatter(t, maxSize)
		e := Entry{Tenant: tenant, Index: index, Time: testTime, Action: action, Outcome: outcome, Data: data}
		out, err := s.appendEntry(nil, &e)
		if err != nil {
			if !errors.Is(err, ErrInvalidEntry) {
				t.Fatalf("appendEntry error %v does not wrap ErrInvalidEntry", err)
			}
			if tenant != "" && index >= 0 && utf8.Valid(data) && json.Valid(data) && 3*(len(tenant)+len(outcome)) < 400 {
				t.Fatalf("appendEntry refused a valid entry: %v", err)
			}
			return
		}
		// JSON forbids raw C0 controls in strings, so none may appear;
		// DEL and C1 controls are legal in JSON and stay in MSG as sent.
		for i, b := range out {
			if b < 0x20 {
				t.Fatalf("output byte %d is control character %#x: %q", i, b, out)
			}
		}
		checkFragments(t, s, &e, mustParse(t, out))
	})
}

func abs(n int) int {
	if n < 0 {
		return -n
	}
	return n
}

// parsedMessage is an RFC 5424 message taken apart by a strict parser
// written from the RFC's ABNF, independent of the formatter.
type parsedMessage struct {
	raw       []byte
	pri       int
	timestamp string
	hostname  string
	appName   string
	procID    string
	msgID     string
	sd        []sdElement
	msg       []byte
}

type sdElement struct {
	id     string
	params map[string]string
}

func mustParse(t testing.TB, frames []byte) []parsedMessage {
	t.Helper()
	msgs, err := parseFrames(frames)
	if err != nil {
		t.Fatalf("parse %q: %v", frames, err)
	}
	return msgs
}

// parseFrames parses RFC 5425 octet-counted frames.
func parseFrames(b []byte) ([]parsedMessage, error) {
	var out []parsedMessage
	for len(b) > 0 {
		sp := bytes.IndexByte(b, ' ')
		if sp < 1 || b[0] == '0' {
			return nil, errors.New("bad MSG-LEN")
		}
		n, err := strconv.Atoi(string(b[:sp]))
		if err != nil || n > len(b)-sp-1 {
			return nil, fmt.Errorf("bad MSG-LEN %q", b[:sp])
		}
		m, err := parseMessage(b[sp+1 : sp+1+n])
		if err != nil {
			return nil, err
		}
		out = append(out, m)
		b = b[sp+1+n:]
	}
	return out, nil
}

func parseMessage(raw []byte) (parsedMessage, error) {
	m := parsedMessage{raw: raw}
	b := raw
	if len(b) < 3 || b[0] != '<' {
		return m, errors.New("no PRI")
	}
	end := bytes.IndexByte(b, '>')
	if end < 2 || end > 4 {
		return m, errors.New("bad PRI")
	}
	pri, err := strconv.Atoi(string(b[1:end]))
	if err != nil || pri > 191 || (end > 2 && b[1] == '0') {
		return m, errors.New("bad PRI value")
	}
	m.pri = pri
	b, ok := bytes.CutPrefix(b[end+1:], []byte("1 "))
	if !ok {
		return m, errors.New("version is not 1")
	}
	for _, f := range []struct {
		dst *string
		max int
	}{{&m.timestamp, 32}, {&m.hostname, 255}, {&m.appName, 48}, {&m.procID, 128}, {&m.msgID, 32}} {
		sp := bytes.IndexByte(b, ' ')
		if sp < 1 || sp > f.max || !isPrintASCII(string(b[:sp])) {
			return m, fmt.Errorf("bad header field in %q", b)
		}
		*f.dst = string(b[:sp])
		b = b[sp+1:]
	}
	if b, ok = bytes.CutPrefix(b, []byte("-")); !ok {
		for len(b) > 0 && b[0] == '[' {
			var el sdElement
			if el, b, err = parseSDElement(b[1:]); err != nil {
				return m, err
			}
			m.sd = append(m.sd, el)
		}
		if m.sd == nil {
			return m, errors.New("no structured data")
		}
	}
	if len(b) > 0 {
		if b[0] != ' ' {
			return m, errors.New("no space before MSG")
		}
		m.msg = b[1:]
	}
	return m, nil
}

// parseSDElement parses an SD-ELEMENT after its '['.
func parseSDElement(b []byte) (sdElement, []byte, error) {
	el := sdElement{params: map[string]string{}}
	name := func(allowAt bool) (string, error) {
		i := 0
		for i < len(b) && i <= 32 && b[i] > 32 && b[i] < 127 && b[i] != '=' && b[i] != ']' && b[i] != '"' && (allowAt || b[i] != '@') {
			i++
		}
		if i == 0 || i > 32 {
			return "", fmt.Errorf("bad SD-NAME in %q", b)
		}
		s := string(b[:i])
		b = b[i:]
		return s, nil
	}
	var err error
	if el.id, err = name(true); err != nil {
		return el, nil, err
	}
	for len(b) > 0 && b[0] == ' ' {
		b = b[1:]
		k, err := name(false)
		if err != nil {
			return el, nil, err
		}
		var ok bool
		if b, ok = bytes.CutPrefix(b, []byte(`="`)); !ok {
			return el, nil, fmt.Errorf("param %s: no =\"", k)
		}
		var v []byte
		for {
			if len(b) == 0 {
				return el, nil, fmt.Errorf("param %s: unterminated value", k)
			}
			c := b[0]
			b = b[1:]
			if c == '"' {
				break
			}
			if c == ']' {
				return el, nil, fmt.Errorf("param %s: unescaped ]", k)
			}
			if c == '\\' && len(b) > 0 && (b[0] == '"' || b[0] == '\\' || b[0] == ']') {
				c = b[0]
				b = b[1:]
			}
			v = append(v, c)
		}
		if !utf8.Valid(v) {
			return el, nil, fmt.Errorf("param %s: invalid UTF-8", k)
		}
		if _, dup := el.params[k]; dup {
			return el, nil, fmt.Errorf("param %s twice", k)
		}
		el.params[k] = string(v)
	}
	if len(b) == 0 || b[0] != ']' {
		return el, nil, fmt.Errorf("SD element not closed: %q", b)
	}
	return el, b[1:], nil
}
