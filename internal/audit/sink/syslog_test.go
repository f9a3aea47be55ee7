package sink

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"os"
	"strconv"
	"strings"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/idvault/idvault/internal/testenv/testclock"
	"github.com/idvault/idvault/internal/testenv/testtls"
	"github.com/idvault/idvault/internal/tlsconf"
)

const testHost = "idvault-test-host"

var testTime = time.Date(2025, 3, 4, 5, 6, 7, 123456789, time.UTC)

// newTestSyslog returns a sink for addr trusting ca, closed when the test
// ends. edit may change the configuration first.
func newTestSyslog(t testing.TB, addr string, ca *testtls.CA, edit func(*SyslogConfig)) *Syslog {
	t.Helper()
	cfg := SyslogConfig{Address: addr, CAFile: ca.File, Hostname: testHost}
	if edit != nil {
		edit(&cfg)
	}
	s, err := NewSyslog(cfg)
	if err != nil {
		t.Fatalf("NewSyslog: %v", err)
	}
	t.Cleanup(func() {
		if err := s.Close(); err != nil {
			t.Errorf("Close: %v", err)
		}
	})
	return s
}

func event(tenant string, index int64, action, outcome string) Entry {
	data := fmt.Sprintf(`{"id":"ev%d","tenant":%q,"time":%q,"actor":{"type":"user","id":"u1"},"action":%q,"resource":{"type":"record","id":"r1"},"outcome":%q}`,
		index, tenant, testTime.Format(time.RFC3339Nano), action, outcome)
	return Entry{Tenant: tenant, Index: index, Time: testTime, Action: action, Outcome: outcome, Data: []byte(data)}
}

// TestSyslogDeliversToRsyslog sends events to a real rsyslog over TLS and
// checks every header field as rsyslog parsed it.
func TestSyslogDeliversToRsyslog(t *testing.T) {
	ca := testtls.NewCA(t, "syslog CA")
	srv := startRsyslog(t, ca, rsyslogOptions{})
	s := newTestSyslog(t, srv.addr, ca, nil)

	cet := time.FixedZone("CET", 3600)
	unicodeEvent := Entry{Tenant: "tenant-ü", Index: 3, Time: testTime.In(cet), Action: "export.create", Outcome: "error",
		Data: []byte("{\n  \"note\": \"naïve café 東京\",\n  \"n\": 1\n}")}
	entries := []Entry{
		event("acme", 0, "session.signin", "success"),
		event("acme", 1, "authz.denied", "denied"),
		unicodeEvent,
		{Tenant: "acme", Index: 4, Action: "key.rotate", Outcome: "unknown-outcome", Data: []byte(`{"id":"ev4"}`)},
	}
	if err := s.Write(t.Context(), entries); err != nil {
		t.Fatalf("Write: %v", err)
	}
	recs := srv.records(t, len(entries))
	if len(recs) != len(entries) {
		t.Fatalf("rsyslog got %d messages, want %d", len(recs), len(entries))
	}
	pid := strconv.Itoa(os.Getpid())
	want := []record{
		{PRI: "85", Timestamp: "2025-03-04T05:06:07.123456Z", MsgID: "session.signin",
			SD: `[idvault@32473 tenant="acme" index="0" outcome="success"]`, Msg: bom + string(entries[0].Data)},
		{PRI: "84", Timestamp: "2025-03-04T05:06:07.123456Z", MsgID: "authz.denied",
			SD: `[idvault@32473 tenant="acme" index="1" outcome="denied"]`, Msg: bom + string(entries[1].Data)},
		{PRI: "83", Timestamp: "2025-03-04T05:06:07.123456Z", MsgID: "export.create",
			SD: `[idvault@32473 tenant="tenant-ü" index="3" outcome="error"]`, Msg: bom + `{"note":"naïve café 東京","n":1}`},
		{PRI: "84", Timestamp: "-", MsgID: "key.rotate",
			SD: `[idvault@32473 tenant="acme" index="4" outcome="unknown-outcome"]`, Msg: bom + `{"id":"ev4"}`},
	}
	for i, got := range recs {
		w := want[i]
		w.Version, w.Hostname, w.AppName, w.ProcID = "1", testHost, "idvault", pid
		if w.Timestamp == "-" {
			// rsyslog puts its reception time in place of a NILVALUE timestamp.
			w.Timestamp = got.Timestamp
			if !strings.Contains(got.Raw, " - "+testHost+" ") {
				t.Errorf("message %d: raw %q does not carry the NILVALUE timestamp", i, got.Raw)
			}
		}
		w.Raw = got.Raw
		if got != w {
			t.Errorf("message %d as rsyslog parsed it:\n got %+v\nwant %+v", i, got, w)
		}
		if !strings.HasPrefix(got.Raw, "<"+w.PRI+">1 ") || !strings.HasSuffix(got.Raw, w.Msg) {
			t.Errorf("message %d: raw %q is not <PRI>1 … MSG", i, got.Raw)
		}
	}
}

// TestSyslogSplitsLongEvents sends an event several times the message size
// limit and rebuilds it from the fragments rsyslog received.
func TestSyslogSplitsLongEvents(t *testing.T) {
	ca := testtls.NewCA(t, "syslog CA")
	srv := startRsyslog(t, ca, rsyslogOptions{})
	s := newTestSyslog(t, srv.addr, ca, func(c *SyslogConfig) { c.MaxMessageSize = 1024 })

	long := Entry{Tenant: "acme", Index: 9, Time: testTime, Action: "record.read", Outcome: "success",
		Data: []byte(`{"details":"` + strings.Repeat("é東x", 1000) + `"}`)}
	small := event("acme", 10, "marker", "success")
	if err := s.Write(t.Context(), []Entry{long, small}); err != nil {
		t.Fatalf("Write: %v", err)
	}
	recs := srv.recordsUntil(t, "marker")
	parts := len(recs) - 1
	if parts < len(long.Data)/1024+1 {
		t.Fatalf("rsyslog got %d fragments of a %d-byte event, want at least %d", parts, len(long.Data), len(long.Data)/1024+1)
	}
	var rebuilt strings.Builder
	for i, rec := range recs[:parts] {
		if len(rec.Raw) > 1024 {
			t.Errorf("fragment %d is %d octets, over the 1024 limit", i+1, len(rec.Raw))
		}
		wantSD := fmt.Sprintf(`[idvault@32473 tenant="acme" index="9" outcome="success" part="%d" parts="%d"]`, i+1, parts)
		if rec.SD != wantSD || rec.MsgID != "record.read" || rec.PRI != "85" {
			t.Errorf("fragment %d: pri %s msgid %s sd %s, want 85 record.read %s", i+1, rec.PRI, rec.MsgID, rec.SD, wantSD)
		}
		frag, ok := strings.CutPrefix(rec.Msg, bom)
		if !ok || !utf8.ValidString(frag) {
			t.Errorf("fragment %d does not hold BOM and valid UTF-8: %q", i+1, rec.Msg)
		}
		rebuilt.WriteString(frag)
	}
	if rebuilt.String() != string(long.Data) {
		t.Errorf("rebuilt event differs from the original (%d bytes, want %d)", rebuilt.Len(), len(long.Data))
	}
	if last := recs[parts]; last.SD != `[idvault@32473 tenant="acme" index="10" outcome="success"]` || last.Msg != bom+string(small.Data) {
		t.Errorf("event after the split one: sd %s msg %q", last.SD, last.Msg)
	}
}

// TestSyslogMutualTLS delivers to a server that requires a client
// certificate issued by its CA, and fails Write, rather than losing the
// batch, when the server hangs up on a client without one or with one from
// another CA (rsyslog checks the certificate after the handshake).
func TestSyslogMutualTLS(t *testing.T) {
	ca := testtls.NewCA(t, "syslog CA")
	srv := startRsyslog(t, ca, rsyslogOptions{authMode: "x509/certvalid"})
	certFile, keyFile := ca.Issue(t, "idvault-client", testtls.LeafOptions{Client: true}).Files(t)
	otherCert, otherKey := testtls.NewCA(t, "other CA").Issue(t, "other-client", testtls.LeafOptions{Client: true}).Files(t)

	for _, tt := range []struct{ name, cert, key string }{
		{"no client certificate", "", ""},
		{"client certificate from another CA", otherCert, otherKey},
	} {
		t.Run(tt.name, func(t *testing.T) {
			s := newTestSyslog(t, srv.addr, ca, func(c *SyslogConfig) { c.CertFile, c.KeyFile = tt.cert, tt.key })
			err := s.Write(t.Context(), []Entry{event("acme", 0, "refused", "success")})
			if err == nil || !strings.Contains(err.Error(), "closed the connection after the TLS handshake") {
				t.Fatalf("Write = %v, want the server's refusal", err)
			}
		})
	}

	s := newTestSyslog(t, srv.addr, ca, func(c *SyslogConfig) { c.CertFile, c.KeyFile = certFile, keyFile })
	e := event("acme", 1, "accepted", "success")
	if err := s.Write(t.Context(), []Entry{e}); err != nil {
		t.Fatalf("Write: %v", err)
	}
	recs := srv.recordsUntil(t, "accepted")
	if len(recs) != 1 || recs[0].Msg != bom+string(e.Data) {
		t.Errorf("rsyslog got %+v, want only the accepted client's event", recs)
	}
}

// TestSyslogRefusesWeakOrUntrustedServers attacks the client with a server
// that only speaks TLS 1.1, a certificate from another CA and a certificate
// for another name: each Write fails with the matching TLS error.
func TestSyslogRefusesWeakOrUntrustedServers(t *testing.T) {
	ca := testtls.NewCA(t, "syslog CA")
	tests := []struct {
		name string
		opts rsyslogOptions
		edit func(*SyslogConfig)
		// control, when set, is a client the server accepts, to show that
		// the server is up and only the sink's policy refuses it.
		control *tls.Config
		want    func(error) bool
	}{
		{
			// GnuTLS finds nothing it can use for TLS 1.1 in a hello that
			// offers TLS 1.2 and 1.3 with AEAD suites only, and hangs up.
			name:    "server speaks only TLS 1.1",
			opts:    rsyslogOptions{priority: "NORMAL:-VERS-ALL:+VERS-TLS1.1"},
			control: &tls.Config{MinVersion: tls.VersionTLS10, MaxVersion: tls.VersionTLS11},
			want:    func(err error) bool { return strings.Contains(err.Error(), "connect to") },
		},
		{
			name: "server certificate from another CA",
			edit: func(c *SyslogConfig) { c.CAFile = testtls.NewCA(t, "other CA").File },
			want: func(err error) bool { var e x509.UnknownAuthorityError; return errors.As(err, &e) },
		},
		{
			name: "server certificate for another name",
			edit: func(c *SyslogConfig) { c.ServerName = "syslog.example.com" },
			want: func(err error) bool { var e x509.HostnameError; return errors.As(err, &e) },
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			srv := startRsyslog(t, ca, tt.opts)
			if tt.control != nil {
				pool, err := tlsconf.LoadCAs(ca.File)
				if err != nil {
					t.Fatal(err)
				}
				cfg := tt.control.Clone()
				cfg.RootCAs, cfg.ServerName = pool, "localhost"
				c, err := tls.Dial("tcp", srv.addr, cfg)
				if err != nil {
					t.Fatalf("control handshake: %v", err)
				}
				if v := c.ConnectionState().Version; v != tls.VersionTLS11 {
					t.Errorf("control handshake used %s, want TLS 1.1", tls.VersionName(v))
				}
				_ = c.Close()
			}
			s := newTestSyslog(t, srv.addr, ca, tt.edit)
			err := s.Write(t.Context(), []Entry{event("acme", 0, "session.signin", "success")})
			if err == nil || !tt.want(err) {
				t.Fatalf("Write = %v, want a refused handshake", err)
			}
		})
	}
}

// TestSyslogServerRestart stops the server between two writes: Write fails
// instead of losing the batch, waits out its backoff, and delivers once the
// server is back.
func TestSyslogServerRestart(t *testing.T) {
	ca := testtls.NewCA(t, "syslog CA")
	srv := startRsyslog(t, ca, rsyslogOptions{})
	s := newTestSyslog(t, srv.addr, ca, func(c *SyslogConfig) { c.MinBackoff = time.Second })
	clock := testclock.New(testTime)
	s.now = clock.Now
	ctx := t.Context()

	first, second := event("acme", 0, "session.signin", "success"), event("acme", 1, "session.signout", "success")
	if err := s.Write(ctx, []Entry{first}); err != nil {
		t.Fatalf("Write before restart: %v", err)
	}
	srv.records(t, 1)
	srv.stop(t)

	if err := s.Write(ctx, []Entry{second}); err == nil {
		t.Fatal("Write with the server down = nil, want an error")
	}
	if err := s.Write(ctx, []Entry{second}); !errors.Is(err, ErrBackoff) {
		t.Fatalf("Write right after a failure = %v, want ErrBackoff", err)
	}
	clock.Advance(time.Second)
	if err := s.Write(ctx, []Entry{second}); err == nil || errors.Is(err, ErrBackoff) {
		t.Fatalf("second attempt with the server down = %v, want a connection error", err)
	}
	clock.Advance(time.Second) // the backoff doubled: 2s from the last failure
	if err := s.Write(ctx, []Entry{second}); !errors.Is(err, ErrBackoff) {
		t.Fatalf("Write 1s into a 2s backoff = %v, want ErrBackoff", err)
	}

	srv.start(t)
	clock.Advance(time.Second)
	if err := s.Write(ctx, []Entry{second}); err != nil {
		t.Fatalf("Write after restart: %v", err)
	}
	recs := srv.records(t, 2)
	if len(recs) != 2 || recs[0].Msg != bom+string(first.Data) || recs[1].Msg != bom+string(second.Data) {
		t.Fatalf("rsyslog got %+v, want the two events once each", recs)
	}

	// A restart between writes is noticed before writing: the batch goes to
	// the new server, not into the dead connection.
	srv.stop(t)
	srv.start(t)
	third := event("acme", 2, "session.signin", "success")
	if err := s.Write(ctx, []Entry{third}); err != nil {
		t.Fatalf("Write after a restart between writes: %v", err)
	}
	if recs := srv.records(t, 3); recs[2].Msg != bom+string(third.Data) {
		t.Fatalf("third message = %q, want %q", recs[2].Msg, bom+string(third.Data))
	}
}

// TestSyslogInjection tries to forge messages and header fields through
// every field an event controls; rsyslog must see exactly one message per
// entry, with the fields sanitized as the package doc says.
func TestSyslogInjection(t *testing.T) {
	ca := testtls.NewCA(t, "syslog CA")
	srv := startRsyslog(t, ca, rsyslogOptions{})
	s := newTestSyslog(t, srv.addr, ca, nil)

	forged := "<13>1 2025-01-01T00:00:00Z evil forged - - - pwned"
	entries := []Entry{
		{Tenant: "acme", Index: 0, Time: testTime, Outcome: "success",
			Action: "a\n" + forged, Data: []byte(`{"a":1}`)},
		{Tenant: "acme\"] [forged@1 x=\"y", Index: 1, Time: testTime, Action: "b", Outcome: "success",
			Data: []byte(`{"a":2}`)},
		{Tenant: "acme\r\n\x00" + forged, Index: 2, Time: testTime, Action: "c\x00d", Outcome: "success\\\"]\n",
			Data: []byte(`{"note":"line\nbreak \u0000 ` + strings.ReplaceAll(forged, `"`, `\"`) + `"}`)},
		{Tenant: "acme", Index: 3, Time: testTime, Action: "über-lange-aktion-mit-mehr-als-32-bytes-im-namen", Outcome: "denied",
			Data: []byte("{\"pretty\":\r\n  \"printed\"\n}")},
	}
	marker := event("acme", 4, "marker", "success")
	if err := s.Write(t.Context(), append(entries, marker)); err != nil {
		t.Fatalf("Write: %v", err)
	}
	recs := srv.records(t, len(entries)+1)
	if len(recs) != len(entries)+1 || recs[len(entries)].MsgID != "marker" {
		t.Fatalf("rsyslog got %d messages (%+v), want %d ending with the marker", len(recs), recs, len(entries)+1)
	}
	want := []struct{ msgID, sd, msg string }{
		{"a_<13>1_2025-01-01T00:00:00Z_evi", `[idvault@32473 tenant="acme" index="0" outcome="success"]`, `{"a":1}`},
		{"b", `[idvault@32473 tenant="acme\"\] [forged@1 x=\"y" index="1" outcome="success"]`, `{"a":2}`},
		{"c_d", `[idvault@32473 tenant="acme���<13>1 2025-01-01T00:00:00Z evil forged - - - pwned" index="2" outcome="success\\\"\]�"]`,
			`{"note":"line\nbreak \u0000 <13>1 2025-01-01T00:00:00Z evil forged - - - pwned"}`},
		{"_ber-lange-aktion-mit-mehr-als-3", `[idvault@32473 tenant="acme" index="3" outcome="denied"]`, `{"pretty":"printed"}`},
	}
	for i, w := range want {
		got := recs[i]
		if got.MsgID != w.msgID || got.SD != w.sd || got.Msg != bom+w.msg || got.Hostname != testHost || got.AppName != "idvault" {
			t.Errorf("entry %d as rsyslog parsed it:\n got msgid %q sd %s msg %q host %q app %q\nwant msgid %q sd %s msg %q",
				i, got.MsgID, got.SD, got.Msg, got.Hostname, got.AppName, w.msgID, w.sd, bom+w.msg)
		}
		if strings.ContainsAny(got.Raw, "\r\n\x00") {
			t.Errorf("entry %d: raw message holds CR, LF or NUL: %q", i, got.Raw)
		}
	}
}

// TestSyslogInvalidEntries checks that a batch with an entry no sink can
// write sends nothing and names the entry.
func TestSyslogInvalidEntries(t *testing.T) {
	s, err := NewSyslog(SyslogConfig{Address: "127.0.0.1:1", Hostname: testHost})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	for _, tt := range invalidEntries() {
		t.Run(tt.name, func(t *testing.T) {
			err := s.Write(t.Context(), []Entry{event("acme", 0, "a", "success"), tt.entry})
			var ee *EntryError
			if !errors.As(err, &ee) || !errors.Is(err, ErrInvalidEntry) || ee.Index != tt.entry.Index {
				t.Fatalf("Write = %v, want an *EntryError for index %d", err, tt.entry.Index)
			}
		})
	}
	huge := event(strings.Repeat("t", 2000), 1, "a", "success")
	if err := s.Write(t.Context(), []Entry{huge}); !errors.Is(err, ErrInvalidEntry) {
		t.Errorf("Write(tenant of 2000 bytes) = %v, want ErrInvalidEntry", err)
	}
	if s.conn != nil || s.failures != 0 {
		t.Errorf("invalid entries reached the network: conn %v, failures %d", s.conn, s.failures)
	}
}

type invalidEntry struct {
	name  string
	entry Entry
}

func invalidEntries() []invalidEntry {
	return []invalidEntry{
		{"empty tenant", Entry{Index: 7, Data: []byte(`{}`)}},
		{"negative index", Entry{Tenant: "acme", Index: -1, Data: []byte(`{}`)}},
		{"empty data", Entry{Tenant: "acme", Index: 7}},
		{"not JSON", Entry{Tenant: "acme", Index: 7, Data: []byte(`{"a":`)}},
		{"two JSON values", Entry{Tenant: "acme", Index: 7, Data: []byte(`{} {}`)}},
		{"raw newline in a string", Entry{Tenant: "acme", Index: 7, Data: []byte("{\"a\":\"x\ny\"}")}},
		{"invalid UTF-8", Entry{Tenant: "acme", Index: 7, Data: []byte("{\"a\":\"\xff\"}")}},
	}
}

// TestSyslogContextAndClose checks that a cancelled context and a closed
// sink fail Write without touching the network.
func TestSyslogContextAndClose(t *testing.T) {
	s, err := NewSyslog(SyslogConfig{Address: "127.0.0.1:1", Hostname: testHost})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	if err := s.Write(ctx, []Entry{event("acme", 0, "a", "success")}); !errors.Is(err, context.Canceled) {
		t.Errorf("Write(cancelled ctx) = %v, want context.Canceled", err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Errorf("second Close = %v, want nil", err)
	}
	if err := s.Write(t.Context(), []Entry{event("acme", 0, "a", "success")}); !errors.Is(err, ErrClosed) {
		t.Errorf("Write after Close = %v, want ErrClosed", err)
	}
}

// TestNewSyslogRejectsBadConfig checks that every problem is reported at once.
func TestNewSyslogRejectsBadConfig(t *testing.T) {
	dir := t.TempDir()
	keyOnly := dir + "/key-only.pem"
	testtls.WritePEM(t, keyOnly, "PRIVATE KEY", []byte("not a key"))
	ca := testtls.NewCA(t, "CA")
	certFile, keyFile := ca.Issue(t, "client", testtls.LeafOptions{Client: true}).Files(t)
	_, otherKey := testtls.NewCA(t, "other").Issue(t, "other", testtls.LeafOptions{Client: true}).Files(t)

	tests := []struct {
		name string
		cfg  SyslogConfig
		want []string
	}{
		{"everything wrong", SyslogConfig{Address: "no-port", Facility: "kern", Hostname: "has space", MaxMessageSize: 100,
			MinBackoff: time.Minute, MaxBackoff: time.Second, DialTimeout: -1, CertFile: "x"},
			[]string{"address", "facility", "hostname", "max message size", "max backoff", "dial timeout", "cert file and key file"}},
		{"hostname too long", SyslogConfig{Address: "h:1", Hostname: strings.Repeat("h", 256)}, []string{"hostname"}},
		{"CA file missing", SyslogConfig{Address: "h:1", Hostname: "h", CAFile: dir + "/missing.pem"}, []string{"CA file: open"}},
		{"CA file holds a key", SyslogConfig{Address: "h:1", Hostname: "h", CAFile: keyOnly}, []string{`PEM block 1 is "PRIVATE KEY"`}},
		{"client key does not match", SyslogConfig{Address: "h:1", Hostname: "h", CertFile: certFile, KeyFile: otherKey}, []string{"client certificate"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := NewSyslog(tt.cfg)
			if err == nil {
				t.Fatal("NewSyslog = nil error")
			}
			for _, w := range tt.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("NewSyslog error %q does not mention %q", err, w)
				}
			}
		})
	}
	if _, err := NewSyslog(SyslogConfig{Address: "h:1", Hostname: "h", CertFile: certFile, KeyFile: keyFile}); err != nil {
		t.Errorf("NewSyslog(valid client pair) = %v", err)
	}
	empty := dir + "/empty.pem"
	if err := os.WriteFile(empty, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := NewSyslog(SyslogConfig{Address: "h:1", Hostname: "h", CAFile: empty}); err == nil || !strings.Contains(err.Error(), "no PEM certificate") {
		t.Errorf("NewSyslog(empty CA file) = %v, want no PEM certificate", err)
	}
}
