package sink

import (
	"strconv"
	"unicode"
	"unicode/utf8"
)

// RFC 5424 constants of the wire format (see the package doc).
const (
	appName  = "idvault"
	sdID     = "idvault@32473"
	bom      = "\xef\xbb\xbf"
	maxMSGID = 32
	// minFragment is the least room for event bytes a message must leave;
	// an entry whose header fields leave less is refused rather than sent as
	// a flood of tiny fragments.
	minFragment = 256
	timeLayout  = "2006-01-02T15:04:05.000000Z07:00"
)

// Severities (RFC 5424 table 2).
const (
	sevErr     = 3
	sevWarning = 4
	sevNotice  = 5
)

// severity maps an outcome (audit.Success, audit.Denied, audit.Failure) to a
// syslog severity.
func severity(outcome string) int {
	switch outcome {
	case "success":
		return sevNotice
	case "error":
		return sevErr
	default: // "denied", or an outcome this version does not know
		return sevWarning
	}
}

// appendEntry appends e to dst as one or more RFC 5425 frames.
func (s *Syslog) appendEntry(dst []byte, e *Entry) ([]byte, error) {
	event, err := appendEvent(nil, e)
	if err != nil {
		return dst, err
	}
	head := s.appendHeader(nil, e)
	sd := appendSD(nil, e, 0, 0)
	if len(head)+len(sd)+1+len(bom)+len(event) <= s.maxSize {
		return appendFrame(dst, head, sd, event), nil
	}
	// Size the part parameters for the worst case: a fragment holds at
	// least one byte, so neither number has more digits than len(event).
	room := s.maxSize - len(head) - len(appendSD(nil, e, len(event), len(event))) - 1 - len(bom)
	if room < minFragment {
		return dst, &EntryError{Tenant: e.Tenant, Index: e.Index, Reason: "header fields leave too little room for the event"}
	}
	var cuts []int
	for start := 0; start < len(event); {
		end := start + room
		if end >= len(event) {
			end = len(event)
		} else {
			for !utf8.RuneStart(event[end]) {
				end--
			}
		}
		cuts = append(cuts, end)
		start = end
	}
	start := 0
	for i, end := range cuts {
		sd = appendSD(sd[:0], e, i+1, len(cuts))
		dst = appendFrame(dst, head, sd, event[start:end])
		start = end
	}
	return dst, nil
}

// appendFrame appends "MSG-LEN SP HEAD SD SP BOM MSG".
func appendFrame(dst, head, sd, msg []byte) []byte {
	n := len(head) + len(sd) + 1 + len(bom) + len(msg)
	dst = strconv.AppendInt(dst, int64(n), 10)
	dst = append(dst, ' ')
	dst = append(dst, head...)
	dst = append(dst, sd...)
	dst = append(dst, ' ')
	dst = append(dst, bom...)
	return append(dst, msg...)
}

// appendHeader appends "<PRI>1 TIMESTAMP HOSTNAME APP-NAME PROCID MSGID ".
func (s *Syslog) appendHeader(dst []byte, e *Entry) []byte {
	dst = append(dst, '<')
	dst = strconv.AppendInt(dst, int64(s.facility*8+severity(e.Outcome)), 10)
	dst = append(dst, ">1 "...)
	if t := e.Time.UTC(); e.Time.IsZero() || t.Year() > 9999 || t.Year() < 0 {
		dst = append(dst, '-')
	} else {
		dst = t.AppendFormat(dst, timeLayout)
	}
	dst = append(dst, ' ')
	dst = append(dst, s.hostname...)
	dst = append(dst, ' ')
	dst = append(dst, appName...)
	dst = append(dst, ' ')
	dst = append(dst, s.procid...)
	dst = append(dst, ' ')
	dst = appendMSGID(dst, e.Action)
	return append(dst, ' ')
}

// appendMSGID appends action as a MSGID: printable US-ASCII only, any other
// character replaced by '_', at most 32 bytes, "-" when empty.
func appendMSGID(dst []byte, action string) []byte {
	if action == "" {
		return append(dst, '-')
	}
	n := 0
	for _, r := range action {
		if n == maxMSGID {
			break
		}
		if r < 33 || r > 126 {
			r = '_'
		}
		dst = append(dst, byte(r))
		n++
	}
	return dst
}

// appendSD appends the structured data element. part and parts are written
// when parts is not zero.
func appendSD(dst []byte, e *Entry, part, parts int) []byte {
	dst = append(dst, '[')
	dst = append(dst, sdID...)
	dst = append(dst, ` tenant="`...)
	dst = appendParamValue(dst, e.Tenant)
	dst = append(dst, `" index="`...)
	dst = strconv.AppendInt(dst, e.Index, 10)
	dst = append(dst, `" outcome="`...)
	dst = appendParamValue(dst, e.Outcome)
	dst = append(dst, '"')
	if parts != 0 {
		dst = append(dst, ` part="`...)
		dst = strconv.AppendInt(dst, int64(part), 10)
		dst = append(dst, `" parts="`...)
		dst = strconv.AppendInt(dst, int64(parts), 10)
		dst = append(dst, '"')
	}
	return append(dst, ']')
}

// appendParamValue appends v as an SD PARAM-VALUE: '"', '\' and ']'
// escaped, control characters and invalid UTF-8 replaced by U+FFFD.
func appendParamValue(dst []byte, v string) []byte {
	for _, r := range v {
		switch {
		case r == '"' || r == '\\' || r == ']':
			dst = append(dst, '\\', byte(r))
		case unicode.IsControl(r):
			dst = utf8.AppendRune(dst, utf8.RuneError)
		default:
			dst = utf8.AppendRune(dst, r) // invalid bytes decode as RuneError
		}
	}
	return dst
}
