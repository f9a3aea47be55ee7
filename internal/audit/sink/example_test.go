package sink_test

import (
	"context"
	"errors"
	"fmt"
	"log"
	"log/slog"
	"os"
	"path/filepath"
	"time"

	"github.com/idvault/idvault/internal/audit/sink"
)

// ExampleNewFile appends one audit entry to an NDJSON file.
func ExampleNewFile() {
	dir, err := os.MkdirTemp("", "idvault-audit")
	if err != nil {
		log.Fatal(err)
	}
	defer os.RemoveAll(dir)
	path := filepath.Join(dir, "audit.ndjson")

	f, err := sink.NewFile(path, sink.FileOptions{})
	if err != nil {
		log.Fatal(err)
	}
	err = f.Write(context.Background(), []sink.Entry{{
		Tenant:  "acme",
		Index:   0,
		Time:    time.Date(2025, 3, 4, 5, 6, 7, 0, time.UTC),
		Action:  "session.signin",
		Outcome: "success",
		Data:    []byte(`{"id": "ev1", "action": "session.signin", "outcome": "success"}`),
	}})
	if err != nil {
		log.Fatal(err)
	}
	if err := f.Close(); err != nil {
		log.Fatal(err)
	}
	data, err := os.ReadFile(path)
	if err != nil {
		log.Fatal(err)
	}
	fmt.Print(string(data))
	// Output: {"tenant":"acme","index":0,"event":{"id":"ev1","action":"session.signin","outcome":"success"}}
}

// ExampleNewSyslog forwards a batch to a syslog server over TLS and leaves
// the cursor where it was when delivery fails.
func ExampleNewSyslog() {
	s, err := sink.NewSyslog(sink.SyslogConfig{
		Address:  "syslog.internal.example:6514",
		CAFile:   "/etc/idvault/syslog-ca.pem",
		CertFile: "/etc/idvault/syslog-client.pem",
		KeyFile:  "/etc/idvault/syslog-client.key",
		Logger:   slog.New(slog.NewJSONHandler(os.Stderr, nil)),
	})
	if err != nil {
		log.Fatal(err)
	}
	defer s.Close()

	var batch []sink.Entry // read from the tenant's audit log at the cursor
	var ee *sink.EntryError
	switch err := s.Write(context.Background(), batch); {
	case err == nil:
		// advance the cursor past batch
	case errors.As(err, &ee):
		// skip entry ee.Index, report it, and write the rest
	default:
		// keep the cursor; retry later (errors.Is(err, sink.ErrBackoff) while waiting)
	}
}
