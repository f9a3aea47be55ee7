package sink

import (
	"bytes"
	"encoding/json"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"syscall"
	"testing"
	"time"

	"github.com/idvault/idvault/internal/testenv/testtls"
)

// rsyslogd finds the rsyslogd binary. Without one it skips the test, or
// fails it when IDVAULT_TEST_REQUIRE_INTEGRATION=1 (scripts/test installs
// the Debian packages rsyslog and rsyslog-gnutls).
func rsyslogd(t testing.TB) string {
	t.Helper()
	for _, p := range []string{"rsyslogd", "/usr/sbin/rsyslogd", "/sbin/rsyslogd"} {
		if path, err := exec.LookPath(p); err == nil {
			return path
		}
	}
	const msg = "rsyslogd not found (install the rsyslog and rsyslog-gnutls packages)"
	if os.Getenv("IDVAULT_TEST_REQUIRE_INTEGRATION") == "1" {
		t.Fatal("IDVAULT_TEST_REQUIRE_INTEGRATION=1 but " + msg)
	}
	t.Skip(msg)
	return ""
}

// rsyslogOptions shape the server a test starts.
type rsyslogOptions struct {
	// authMode is the gtls StreamDriver.AuthMode: "anon" (default) or
	// "x509/certvalid" (client certificate required).
	authMode string
	// priority is a GnuTLS priority string; empty leaves the default.
	priority string
}

// rsyslog is an rsyslogd child process listening with TLS on a loopback
// port and writing every message it receives over TCP to a file, one JSON
// object per message with the fields it parsed.
type rsyslog struct {
	bin    string
	dir    string
	conf   string
	out    string
	addr   string
	cmd    *exec.Cmd
	stderr *bytes.Buffer
	done   chan error
}

// startRsyslog starts rsyslogd with a server certificate issued by ca and
// stops it when the test ends.
func startRsyslog(t testing.TB, ca *testtls.CA, opts rsyslogOptions) *rsyslog {
	t.Helper()
	bin := rsyslogd(t)
	if opts.authMode == "" {
		opts.authMode = "anon"
	}
	dir := t.TempDir()
	certFile, keyFile := ca.Issue(t, "rsyslog-server", testtls.LeafOptions{}).Files(t)
	r := &rsyslog{
		bin:  bin,
		dir:  dir,
		conf: filepath.Join(dir, "rsyslog.conf"),
		out:  filepath.Join(dir, "out.ndjson"),
		addr: net.JoinHostPort("127.0.0.1", strconv.Itoa(freePort(t))),
	}
	work := filepath.Join(dir, "work")
	if err := os.Mkdir(work, 0o700); err != nil {
		t.Fatal(err)
	}
	_, port, _ := net.SplitHostPort(r.addr)
	priority := ""
	if opts.priority != "" {
		priority = fmt.Sprintf(" gnutlsPriorityString=%q", opts.priority)
	}
	conf := fmt.Sprintf(`global(
  workDirectory=%q
  maxMessageSize="64k"
  defaultNetstreamDriver="gtls"
  defaultNetstreamDriverCAFile=%q
  defaultNetstreamDriverCertFile=%q
  defaultNetstreamDriverKeyFile=%q
)
module(load="imtcp" StreamDriver.Name="gtls" StreamDriver.Mode="1" StreamDriver.AuthMode=%q)
input(type="imtcp" address="127.0.0.1" port=%q%s)
template(name="fields" type="list" option.jsonf="on") {
  property(outname="pri" name="pri" format="jsonf")
  property(outname="version" name="protocol-version" format="jsonf")
  property(outname="timestamp" name="timestamp" dateFormat="rfc3339" format="jsonf")
  property(outname="hostname" name="hostname" format="jsonf")
  property(outname="appname" name="app-name" format="jsonf")
  property(outname="procid" name="procid" format="jsonf")
  property(outname="msgid" name="msgid" format="jsonf")
  property(outname="sd" name="structured-data" format="jsonf")
  property(outname="msg" name="msg" format="jsonf")
  property(outname="raw" name="rawmsg" format="jsonf")
}
if $inputname == "imtcp" then {
  action(type="omfile" file=%q template="fields")
}
`, work, ca.File, certFile, keyFile, opts.authMode, port, priority, r.out)
	if err := os.WriteFile(r.conf, []byte(conf), 0o600); err != nil {
		t.Fatal(err)
	}
	r.start(t)
	t.Cleanup(func() { r.stop(t) })
	return r
}

// freePort returns a loopback TCP port that was free a moment ago.
func freePort(t testing.TB) int {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	port := ln.Addr().(*net.TCPAddr).Port
	if err := ln.Close(); err != nil {
		t.Fatal(err)
	}
	return port
}

// start runs rsyslogd in the foreground and waits until it accepts TCP
// connections.
func (r *rsyslog) start(t testing.TB) {
	t.Helper()
	r.stderr = new(bytes.Buffer)
	r.cmd = exec.Command(r.bin, "-n", "-f", r.conf, "-i", filepath.Join(r.dir, "rsyslogd.pid"))
	r.cmd.Dir = r.dir
	r.cmd.Stdout = r.stderr
	r.cmd.Stderr = r.stderr
	if err := r.cmd.Start(); err != nil {
		t.Fatalf("start rsyslogd: %v", err)
	}
	r.done = make(chan error, 1)
	go func() { r.done <- r.cmd.Wait() }()
	deadline := time.Now().Add(30 * time.Second)
	for {
		c, err := net.Dial("tcp", r.addr)
		if err == nil {
			_ = c.Close()
			return
		}
		select {
		case err := <-r.done:
			r.cmd = nil
			t.Fatalf("rsyslogd exited before listening: %v\n%s", err, r.stderr)
		case <-time.After(20 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			t.Fatalf("rsyslogd does not listen on %s after 30s\n%s", r.addr, r.stderr)
		}
	}
}

// stop terminates rsyslogd and waits for it to exit.
func (r *rsyslog) stop(t testing.TB) {
	t.Helper()
	if r.cmd == nil {
		return
	}
	if err := r.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Errorf("signal rsyslogd: %v", err)
	}
	<-r.done
	r.cmd = nil
}

// record is one message as rsyslog parsed it.
type record struct {
	PRI       string `json:"pri"`
	Version   string `json:"version"`
	Timestamp string `json:"timestamp"`
	Hostname  string `json:"hostname"`
	AppName   string `json:"appname"`
	ProcID    string `json:"procid"`
	MsgID     string `json:"msgid"`
	SD        string `json:"sd"`
	Msg       string `json:"msg"`
	Raw       string `json:"raw"`
}

// records waits until rsyslog has written at least n messages and returns
// all it has written.
func (r *rsyslog) records(t testing.TB, n int) []record {
	t.Helper()
	return r.wait(t, fmt.Sprintf("%d messages", n), func(recs []record) bool { return len(recs) >= n })
}

// recordsUntil waits until rsyslog has written a message with the given
// MSGID and returns all it has written.
func (r *rsyslog) recordsUntil(t testing.TB, msgID string) []record {
	t.Helper()
	return r.wait(t, "a message with MSGID "+msgID, func(recs []record) bool {
		return len(recs) > 0 && recs[len(recs)-1].MsgID == msgID
	})
}

func (r *rsyslog) wait(t testing.TB, what string, done func([]record) bool) []record {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for {
		recs := r.read(t)
		if done(recs) {
			return recs
		}
		if time.Now().After(deadline) {
			t.Fatalf("rsyslog wrote %d messages after 30s, want %s\n%s", len(recs), what, r.stderr)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func (r *rsyslog) read(t testing.TB) []record {
	t.Helper()
	data, err := os.ReadFile(r.out)
	if os.IsNotExist(err) {
		return nil
	}
	if err != nil {
		t.Fatal(err)
	}
	var recs []record
	complete := data[:bytes.LastIndexByte(data, '\n')+1] // the last line may be unfinished
	for line := range bytes.Lines(complete) {
		var rec record
		if err := json.Unmarshal(line, &rec); err != nil {
			t.Fatalf("rsyslog output line %q: %v", line, err)
		}
		recs = append(recs, rec)
	}
	return recs
}
