// Package sink forwards audit events, after they are in the tamper-evident
// log, to places outside idvault: an append-only file (File) and a syslog
// server over TLS (Syslog). A forwarder reads each tenant's log from a cursor,
// calls Sink.Write with a batch of entries and advances the cursor only when
// Write returns nil. Delivery is therefore at least once: after a failure or
// a crash the same entries may be written again, and a consumer deduplicates
// by (tenant, index). The log in the store stays the record of truth; a sink
// is a copy for a SIEM or an operator.
//
// # File wire format
//
// File appends one line per entry (NDJSON), each a JSON object:
//
//	{"tenant":"t1","index":42,"event":{...}}
//
// tenant and index are the entry's; event is the entry's Data with
// insignificant white space removed (encoding/json Compact), so every line is
// one JSON value and holds no raw control character. The file is opened with
// O_APPEND and created with mode 0600 (0640 on request); Write writes a batch
// in one write(2) call and fsyncs before it returns. Reopen reopens the path
// for logrotate (rotate by rename, then Reopen, as after SIGHUP).
//
// # Syslog wire format
//
// Syslog sends RFC 5424 messages over TLS with RFC 5425 octet-counting
// framing ("MSG-LEN SP SYSLOG-MSG"), one message per entry:
//
//	<PRI>1 TIMESTAMP HOSTNAME idvault PROCID MSGID [idvault@32473 tenant="t1" index="42" outcome="success"] BOM{...}
//
// The fields are:
//
//   - PRI is facility*8 + severity. The facility is configurable and defaults
//     to authpriv (10), not auth (4): both are "security/authorization
//     messages", but syslog setups route authpriv to restricted files only
//     (RHEL's /var/log/messages takes auth.* but excludes authpriv.*), and
//     audit events name actors' addresses and user agents, which are personal
//     data. Severity follows the outcome: success is notice (5, "normal but
//     significant"), denied is warning (4), error is err (3), and any other
//     outcome is warning.
//   - TIMESTAMP is the entry's time in UTC with microseconds
//     (2006-01-02T15:04:05.000000Z), or "-" for a zero time.
//   - HOSTNAME is configured or os.Hostname; APP-NAME is "idvault"; PROCID is
//     the process id; MSGID is the action.
//   - The structured data element idvault@32473 carries tenant, index and
//     outcome. 32473 is the example Private Enterprise Number of RFC 5612;
//     the SD-ID changes when idvault registers its own number.
//   - MSG is a UTF-8 byte order mark followed by the entry's Data, compacted
//     as for File.
//
// Header fields cannot be injected into. MSGID keeps only printable US-ASCII
// (33-126) and at most 32 bytes; any other character becomes '_'. In
// structured data values, '"', '\' and ']' are escaped as RFC 5424 requires,
// and control characters and invalid UTF-8 become U+FFFD, so no CR, LF or NUL
// reaches a receiver that writes messages to text files. The event itself
// keeps every byte: it is valid JSON, which escapes control characters.
//
// Messages longer than SyslogConfig.MaxMessageSize (default 2048 octets, the
// size RFC 5425 receivers must accept) are split, never truncated: the event
// JSON is cut at UTF-8 character boundaries into fragments, each sent as its
// own message with the same header and with part="i" parts="n" (1-based)
// added to the structured data. A receiver rebuilds the event by
// concatenating the fragments of (tenant, index) in part order. Messages that
// fit carry no part parameters.
//
// # Threat model
//
// Protected: audit events in transit to the syslog server against passive
// and active network attackers (TLS 1.2 or 1.3 only, ECDHE with AEAD ciphers
// under TLS 1.2, the server certificate verified against the configured CA
// file or the system roots and the server name); the receiver's view of which
// tenant and action a message belongs to against forged header fields; the
// file against other local users (mode 0600, a file with wider permissions is
// refused, not widened silently).
//
// Not protected: RFC 5425 has no acknowledgement, so a Write that returned
// nil means the bytes reached the TLS connection, not the server's disk. Two
// checks narrow the gap. Before each Write the sink checks whether the server
// has closed the connection (on Linux, a non-blocking peek at the socket),
// which catches a restarted server. After connecting it waits
// SyslogConfig.AcceptWait (500ms) for a server that refuses the client after
// the handshake (rsyslog checks client certificates then, and so do TLS 1.3
// servers) to hang up, so a refused client gets errors instead of losing
// every batch. A server that fails after these checks, or refuses later than
// the wait, can still lose a batch; use the file sink, or a receiver that
// writes what it gets at once, where every event must arrive.
//
// Anyone who can read the output file or the syslog server's storage reads
// the events, including personal data in them (actor addresses, user
// agents): protect those as the audit log. A receiver whose message size
// limit is below MaxMessageSize truncates messages; keep MaxMessageSize at or
// below it (rsyslog: global maxMessageSize, 8k by default).
//
// The sinks log connection state and errors, never entries or their fields.
package sink
