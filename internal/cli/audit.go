package cli

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"slices"
	"strconv"
	"strings"
	"time"

	"golang.org/x/mod/sumdb/note"

	"github.com/idvault/idvault/internal/audit"
	"github.com/idvault/idvault/internal/auditlog"
	"github.com/idvault/idvault/internal/server"
	"github.com/idvault/idvault/internal/store"
)

const auditUsage = `Usage: idvault audit <command> [flags]

The tamper-evident audit log: one Merkle tree log per tenant with signed
checkpoints. See docs/audit-log.md for the verification procedure.

Commands:
  verify [--tenant ID] [--from N] [--trusted FILE]... [--json]
                     check every log (or one tenant's) for gaps, edits,
                     reordering, truncation, bad signatures and forks, and
                     against checkpoints saved earlier; exit status 1 when a
                     problem is found
  prove --tenant ID --event ID
                     print the inclusion proof of one event as JSON (it holds
                     the event, which is personal data; recorded as
                     audit.prove)
  consistency --tenant ID --from N [--to M]
                     print, as JSON, the proof that the log at checkpoint size M
                     (default: the latest) extends the log at checkpoint size N
                     (recorded as audit.prove)
  check --key KEY|--key-file FILE PROOF.json
                     check an inclusion or consistency proof offline, with the
                     public key alone; needs no configuration or data directory
  checkpoint --tenant ID
                     print the latest signed checkpoint, for auditors to keep
  export [--tenant ID] [--from TIME] [--to TIME] [--action A] [--out FILE]
                     write events as NDJSON, every log without --tenant
                     (personal data; recorded as audit.export)
  public-key         print the public key that checks checkpoints and proofs
  keygen --name NAME [--out FILE]
                     make a new checkpoint signing key (for audit.signingKey)
                     and print its public key; needs no configuration

Every command but check and keygen takes --config, --data-dir and --listen
like serve.
`

// exportProgressEvery is how many exported events of one log pass between
// two progress lines on standard error.
const exportProgressEvery = 10000

func auditCmd(ctx context.Context, args []string, stdout, stderr io.Writer, environ []string) error {
	if len(args) > 0 {
		switch args[0] {
		case "check":
			return auditCheck(args[1:], stdout)
		case "keygen":
			return auditKeygen(args[1:], stdout, stderr)
		}
	}
	type command = func(*flag.FlagSet) func(context.Context, *server.Server) error
	return adminCmd(ctx, "audit", auditUsage, args, stdout, stderr, environ, map[string]command{
		"verify": func(fs *flag.FlagSet) func(context.Context, *server.Server) error {
			var o verifyOpts
			fs.StringVar(&o.tenant, "tenant", "", "verify only this tenant's log (default: every log)")
			fs.Int64Var(&o.from, "from", 0, "start at this position, the size of a retained checkpoint (needs --tenant; default: the oldest retained checkpoint)")
			fs.Func("trusted", "a file holding a signed checkpoint saved earlier (idvault audit checkpoint); repeat the flag for several", func(s string) error {
				o.trusted = append(o.trusted, s)
				return nil
			})
			fs.BoolVar(&o.asJSON, "json", false, "print a JSON array with one report per log")
			return func(ctx context.Context, srv *server.Server) error { return auditVerify(ctx, srv, stdout, o) }
		},
		"prove": func(fs *flag.FlagSet) func(context.Context, *server.Server) error {
			tenant := fs.String("tenant", "", "the tenant id")
			event := fs.String("event", "", "the event id")
			return func(ctx context.Context, srv *server.Server) error {
				return auditProve(ctx, srv, stdout, *tenant, *event)
			}
		},
		"consistency": func(fs *flag.FlagSet) func(context.Context, *server.Server) error {
			tenant := fs.String("tenant", "", "the tenant id")
			from := fs.Int64("from", 0, "the size of the older checkpoint (one saved earlier)")
			to := fs.Int64("to", 0, "the size of the newer checkpoint (default: the latest)")
			return func(ctx context.Context, srv *server.Server) error {
				return auditConsistency(ctx, srv, stdout, *tenant, *from, *to)
			}
		},
		"checkpoint": func(fs *flag.FlagSet) func(context.Context, *server.Server) error {
			tenant := fs.String("tenant", "", "the tenant id")
			return func(ctx context.Context, srv *server.Server) error { return auditCheckpoint(ctx, srv, stdout, *tenant) }
		},
		"export": func(fs *flag.FlagSet) func(context.Context, *server.Server) error {
			var o exportOpts
			fs.StringVar(&o.tenant, "tenant", "", "export only this tenant's log (default: every log)")
			fs.StringVar(&o.from, "from", "", "only events at or after this time (RFC 3339)")
			fs.StringVar(&o.to, "to", "", "only events before this time (RFC 3339)")
			fs.StringVar(&o.filter.Action, "action", "", "only events of this action (docs/audit-events.md)")
			fs.StringVar(&o.filter.Outcome, "outcome", "", "only events of this outcome: success, denied or error")
			fs.StringVar(&o.filter.ActorID, "actor", "", "only events of this actor id")
			fs.StringVar(&o.filter.ResourceType, "resource-type", "", "only events on this resource type")
			fs.StringVar(&o.filter.ResourceID, "resource-id", "", "only events on this resource id")
			fs.StringVar(&o.out, "out", "", "write to this new file (created with mode 0600; it must not exist) instead of standard output")
			return func(ctx context.Context, srv *server.Server) error { return auditExport(ctx, srv, stdout, stderr, o) }
		},
		"public-key": func(*flag.FlagSet) func(context.Context, *server.Server) error {
			return func(_ context.Context, srv *server.Server) error {
				if _, err := needLog(srv); err != nil {
					return err
				}
				_, err := fmt.Fprintln(stdout, srv.AuditVerifierKey)
				return err
			}
		},
	})
}

// needLog returns the server's audit log, or an error saying why there is
// none.
func needLog(srv *server.Server) (*auditlog.Log, error) {
	if srv.AuditLog == nil {
		return nil, fmt.Errorf("no audit log here: this data directory has no checkpoint signing key yet (%s); "+
			"run idvault init or idvault serve once, or set audit.signingKey", server.DevAuditKeyPath(srv.Config))
	}
	return srv.AuditLog, nil
}

type verifyOpts struct {
	tenant  string
	from    int64
	trusted []string
	asJSON  bool
}

func auditVerify(ctx context.Context, srv *server.Server, stdout io.Writer, o verifyOpts) error {
	lg, err := needLog(srv)
	if err != nil {
		return err
	}
	if o.from < 0 {
		return fmt.Errorf("audit verify: --from must not be negative, got %d", o.from)
	}
	if o.from > 0 && o.tenant == "" {
		return errors.New("audit verify: --from needs --tenant: a start position belongs to one tenant's log")
	}
	trusted, err := readTrusted(o.trusted, srv.Config.Audit.Origin)
	if err != nil {
		return err
	}
	logs, err := lg.Tenants(ctx)
	if err != nil {
		return fmt.Errorf("audit verify: list logs: %w", err)
	}
	var tenants []string
	if o.tenant != "" {
		for t, files := range trusted {
			if t != o.tenant {
				return fmt.Errorf("audit verify: trusted checkpoint %s is of tenant %q's log, not %q's", files[0], t, o.tenant)
			}
		}
		if !slices.Contains(logs, o.tenant) && len(trusted) == 0 {
			return fmt.Errorf("audit verify: tenant %q has no audit log: none of its events was appended yet, "+
				"or its whole log was deleted (only checkpoints saved earlier, passed with --trusted, can tell which)", o.tenant)
		}
		tenants = []string{o.tenant}
	} else {
		// A log deleted whole is no longer listed; a trusted checkpoint
		// of it still makes Verify look, and find it truncated.
		tenants = logs
		for t := range trusted {
			if !slices.Contains(tenants, t) {
				tenants = append(tenants, t)
			}
		}
		slices.Sort(tenants)
	}
	if len(tenants) == 0 && !o.asJSON {
		fmt.Fprintln(stdout, "no audit log holds events yet (the audit role appends them from the outbox)")
	}
	reports := make([]auditlog.Report, 0, len(tenants))
	bad := 0
	for _, t := range tenants {
		var notes [][]byte
		for _, f := range trusted[t] {
			notes = append(notes, f.note)
		}
		rep, err := lg.Verify(ctx, t, auditlog.VerifyOptions{From: o.from, Trusted: notes})
		if err != nil {
			return fmt.Errorf("audit verify: %w", err)
		}
		if !rep.Verified() {
			bad++
		}
		reports = append(reports, rep)
		if !o.asJSON {
			printReport(stdout, rep, len(notes))
		}
	}
	if o.asJSON {
		enc := json.NewEncoder(stdout)
		enc.SetIndent("", "  ")
		if err := enc.Encode(reports); err != nil {
			return err
		}
	}
	if bad > 0 {
		return fmt.Errorf("audit verify: found a problem in %d of %d logs", bad, len(reports))
	}
	return nil
}

// printReport writes one line (two for a problem) about a verified log.
func printReport(w io.Writer, rep auditlog.Report, trusted int) {
	if p := rep.Problem; p != nil {
		event := ""
		if p.EventID != "" {
			event = " (event " + p.EventID + ")"
		}
		fmt.Fprintf(w, "%s: PROBLEM %s at position %d%s: %s\n", rep.Tenant, p.Kind, p.Position, event, p.Detail)
		fmt.Fprintf(w, "%s:   %s from position %d verified before it\n", rep.Tenant, plural(rep.Events, "event"), rep.From)
		return
	}
	var b strings.Builder
	fmt.Fprintf(&b, "%s: verified %s", rep.Tenant, plural(rep.Events, "event"))
	if rep.From > 0 {
		fmt.Fprintf(&b, " from position %d", rep.From)
	}
	if cp := rep.Checkpoint; cp != nil {
		fmt.Fprintf(&b, " up to checkpoint %s (size %d, root %s)", cp.Origin, cp.Size, cp.Root)
	} else {
		b.WriteString("; no checkpoint signed yet")
	}
	if rep.Unsigned > 0 {
		fmt.Fprintf(&b, "; %s not yet in a checkpoint", plural(rep.Unsigned, "newer event"))
	}
	if checked := trusted - rep.SkippedTrusted; checked > 0 {
		fmt.Fprintf(&b, "; agrees with %s", plural(int64(checked), "saved checkpoint"))
	}
	if rep.SkippedTrusted > 0 {
		fmt.Fprintf(&b, "; %s older than the oldest retained checkpoint not checked", plural(int64(rep.SkippedTrusted), "saved checkpoint"))
	}
	fmt.Fprintln(w, b.String())
}

// plural returns "1 thing" or "n things".
func plural(n int64, thing string) string {
	if n == 1 {
		return "1 " + thing
	}
	return strconv.FormatInt(n, 10) + " " + thing + "s"
}

// trustedFile is a signed checkpoint read from a file.
type trustedFile struct {
	name string
	note []byte
}

// readTrusted reads signed checkpoint files and sorts them by the tenant
// whose log their origin (unverified: Verify checks it) names.
func readTrusted(files []string, origin string) (map[string][]trustedFile, error) {
	out := map[string][]trustedFile{}
	for _, name := range files {
		b, err := os.ReadFile(name)
		if err != nil {
			return nil, fmt.Errorf("trusted checkpoint: %w", err)
		}
		logName, _, ok := strings.Cut(string(b), "\n")
		if !ok || !strings.Contains(string(b), "\n\n") {
			return nil, fmt.Errorf("trusted checkpoint %s: not a signed checkpoint (save the output of idvault audit checkpoint unchanged)", name)
		}
		tenant, ok := strings.CutPrefix(logName, origin+"/")
		if !ok || tenant == "" {
			return nil, fmt.Errorf("trusted checkpoint %s: log %q is not one of this deployment's (audit.origin %s)", name, logName, origin)
		}
		out[tenant] = append(out[tenant], trustedFile{name: name, note: b})
	}
	return out, nil
}

func auditProve(ctx context.Context, srv *server.Server, stdout io.Writer, tenant, event string) error {
	lg, err := needLog(srv)
	if err != nil {
		return err
	}
	if tenant == "" || event == "" {
		return errors.New("audit prove: --tenant and --event are required")
	}
	p, err := lg.Prove(ctx, tenant, event)
	if errors.Is(err, store.ErrNotFound) {
		return fmt.Errorf("audit prove: no event %q in tenant %q's log (or it was pruned by retention)", event, tenant)
	}
	if err != nil {
		return fmt.Errorf("audit prove: %w", err)
	}
	if err := record(ctx, srv, audit.Event{Tenant: tenant, Action: "audit.prove", Resource: audit.Resource{Type: "event", ID: event},
		Details: map[string]string{"position": strconv.FormatInt(p.Index, 10)}}); err != nil {
		return err
	}
	return writeJSON(stdout, p)
}

func auditConsistency(ctx context.Context, srv *server.Server, stdout io.Writer, tenant string, from, to int64) error {
	lg, err := needLog(srv)
	if err != nil {
		return err
	}
	if tenant == "" || from < 1 {
		return errors.New("audit consistency: --tenant and --from (the size of a checkpoint, at least 1) are required")
	}
	p, err := lg.Consistency(ctx, tenant, from, to)
	if errors.Is(err, store.ErrNotFound) {
		return fmt.Errorf("audit consistency: tenant %q's log has no checkpoint of size %d or %d: "+
			"sizes are those of checkpoints it signed (idvault audit checkpoint): %w", tenant, from, to, err)
	}
	if errors.Is(err, store.ErrInvalid) {
		return fmt.Errorf("audit consistency: --from must be a checkpoint size no larger than --to (default: the latest checkpoint's): %w", err)
	}
	if err != nil {
		return fmt.Errorf("audit consistency: %w", err)
	}
	size := strconv.FormatInt(noteCheckpoint(p.New).size, 10)
	if err := record(ctx, srv, audit.Event{Tenant: tenant, Action: "audit.prove", Resource: audit.Resource{Type: "checkpoint", ID: size},
		Details: map[string]string{"from": strconv.FormatInt(from, 10), "to": size}}); err != nil {
		return err
	}
	return writeJSON(stdout, p)
}

func writeJSON(w io.Writer, v any) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(v)
}

func auditCheckpoint(ctx context.Context, srv *server.Server, stdout io.Writer, tenant string) error {
	lg, err := needLog(srv)
	if err != nil {
		return err
	}
	if tenant == "" {
		return errors.New("audit checkpoint: --tenant is required")
	}
	signed, _, err := lg.Checkpoint(ctx, tenant)
	if errors.Is(err, store.ErrNotFound) {
		return fmt.Errorf("audit checkpoint: tenant %q's log has no signed checkpoint yet "+
			"(the audit role signs one audit.checkpointInterval after events arrive)", tenant)
	}
	if err != nil {
		return fmt.Errorf("audit checkpoint: %w", err)
	}
	_, err = stdout.Write(signed)
	return err
}

type exportOpts struct {
	tenant, from, to, out string
	filter                auditlog.Filter
}

func auditExport(ctx context.Context, srv *server.Server, stdout, stderr io.Writer, o exportOpts) (err error) {
	lg, err := needLog(srv)
	if err != nil {
		return err
	}
	f := o.filter
	for _, t := range []struct {
		flag, value string
		dst         *time.Time
	}{{"--from", o.from, &f.From}, {"--to", o.to, &f.To}} {
		if t.value == "" {
			continue
		}
		if *t.dst, err = time.Parse(time.RFC3339, t.value); err != nil {
			return fmt.Errorf("audit export: %s: want an RFC 3339 time such as 2026-01-31T00:00:00Z, got %q", t.flag, t.value)
		}
	}
	if !f.From.IsZero() && !f.To.IsZero() && !f.From.Before(f.To) {
		return fmt.Errorf("audit export: --from %s is not before --to %s", o.from, o.to)
	}
	tenants := []string{o.tenant}
	if o.tenant == "" {
		if tenants, err = lg.Tenants(ctx); err != nil {
			return fmt.Errorf("audit export: list logs: %w", err)
		}
	}
	w := stdout
	var file *os.File
	if o.out != "" {
		file, err = os.OpenFile(o.out, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
		if errors.Is(err, os.ErrExist) {
			return fmt.Errorf("audit export: %s already exists: choose a new --out file", o.out)
		}
		if err != nil {
			return fmt.Errorf("audit export: %w", err)
		}
		defer func() {
			if cerr := file.Close(); err == nil && cerr != nil {
				err = fmt.Errorf("audit export: %w", cerr)
			}
			if err != nil {
				// A partial export is personal data nobody asked for.
				if rerr := os.Remove(o.out); rerr != nil {
					err = fmt.Errorf("%w (and remove %s: %w)", err, o.out, rerr)
				}
			}
		}()
		w = file
	}
	bw := bufio.NewWriterSize(w, 64<<10)
	total := 0
	for _, t := range tenants {
		// A read of personal data: recorded before its first event
		// leaves (fail-closed), so with the filters rather than a count.
		if err := record(ctx, srv, audit.Event{Tenant: t, Action: "audit.export", Resource: audit.Resource{Type: "audit", ID: t},
			Details: exportDetails(t, f)}); err != nil {
			return fmt.Errorf("audit export: %w", err)
		}
		n, err := exportLog(ctx, lg, t, f, bw, stderr)
		if err != nil {
			return err
		}
		if err := bw.Flush(); err != nil {
			return fmt.Errorf("audit export: write: %w", err)
		}
		total += n
	}
	if file != nil {
		if err := file.Sync(); err != nil {
			return fmt.Errorf("audit export: %w", err)
		}
	}
	fmt.Fprintf(stderr, "idvault: exported %d events\n", total)
	return nil
}

// exportDetails returns the details of an export's audit event: the tenant
// and the filters, which hold kinds, ids and times only.
func exportDetails(tenant string, f auditlog.Filter) map[string]string {
	d := map[string]string{"tenant": tenant}
	for k, v := range map[string]string{"action": f.Action, "outcome": f.Outcome, "actorId": f.ActorID,
		"resourceType": f.ResourceType, "resourceId": f.ResourceID} {
		if v != "" {
			d[k] = v
		}
	}
	if !f.From.IsZero() {
		d["from"] = f.From.UTC().Format(time.RFC3339Nano)
	}
	if !f.To.IsZero() {
		d["to"] = f.To.UTC().Format(time.RFC3339Nano)
	}
	return d
}

// exportedEvent is one NDJSON line of an export, the shape of the file
// sink's lines.
type exportedEvent struct {
	Tenant string          `json:"tenant"`
	Index  int64           `json:"index"`
	Event  json.RawMessage `json:"event"`
}

// exportLog writes the events of one tenant's log that match f, every page
// of them, and returns how many it wrote.
func exportLog(ctx context.Context, lg *auditlog.Log, tenant string, f auditlog.Filter, w io.Writer, progress io.Writer) (int, error) {
	enc := json.NewEncoder(w)
	enc.SetEscapeHTML(false)
	n, next := 0, exportProgressEvery
	cursor := ""
	for {
		evs, more, err := lg.Events(ctx, tenant, f, cursor, store.MaxLimit)
		if err != nil {
			return n, fmt.Errorf("audit export: %w", err)
		}
		for _, e := range evs {
			if err := enc.Encode(exportedEvent{Tenant: tenant, Index: e.Index, Event: e.Data}); err != nil {
				return n, fmt.Errorf("audit export: %s event %s: %w", tenant, e.ID, err)
			}
		}
		n += len(evs)
		if n >= next {
			fmt.Fprintf(progress, "idvault: %s: exported %d events\n", tenant, n)
			next = n + exportProgressEvery
		}
		if more == "" {
			return n, nil
		}
		cursor = more
	}
}

// auditCheck checks a proof offline: it reads no configuration and opens no
// data directory.
func auditCheck(args []string, stdout io.Writer) error {
	fs := flag.NewFlagSet("audit check", flag.ContinueOnError)
	fs.SetOutput(stdout)
	key := fs.String("key", "", "the verifier (public) key, as idvault audit public-key prints it")
	keyFile := fs.String("key-file", "", "a file holding the verifier key")
	fs.Usage = func() {
		fmt.Fprint(stdout, "Usage: idvault audit check --key KEY|--key-file FILE PROOF.json\n\n"+
			"Checks an inclusion proof (idvault audit prove) or a consistency proof (idvault audit\n"+
			"consistency) with the public key alone, and prints what it proves. Needs no configuration\n"+
			"or data directory. Exit status 1 when the proof does not hold.\n\nFlags:\n")
		fs.PrintDefaults()
	}
	var files []string
	for {
		if err := fs.Parse(args); err != nil {
			if errors.Is(err, flag.ErrHelp) {
				return err
			}
			return errUsage
		}
		if fs.NArg() == 0 {
			break
		}
		files = append(files, fs.Arg(0))
		args = fs.Args()[1:]
	}
	if len(files) != 1 || (*key == "") == (*keyFile == "") {
		fmt.Fprint(fs.Output(), "audit check takes one proof file and exactly one of --key and --key-file\n")
		return errUsage
	}
	vkey := *key
	if *keyFile != "" {
		b, err := os.ReadFile(*keyFile)
		if err != nil {
			return fmt.Errorf("audit check: key: %w", err)
		}
		vkey = strings.TrimSpace(string(b))
	}
	if strings.HasPrefix(vkey, "PRIVATE+KEY+") {
		return errors.New("audit check: that is the private signing key: check with the public key (idvault audit public-key), and keep the private one secret")
	}
	if _, err := note.NewVerifier(vkey); err != nil {
		return fmt.Errorf("audit check: not a verifier key (idvault audit public-key prints it): %w", err)
	}
	data, err := os.ReadFile(files[0])
	if err != nil {
		return fmt.Errorf("audit check: %w", err)
	}
	var fields map[string]json.RawMessage
	if err := json.Unmarshal(data, &fields); err != nil {
		return fmt.Errorf("audit check: %s is not a proof: %w", files[0], err)
	}
	_, leaf := fields["leaf"]
	_, old := fields["old"]
	keyName, _, _ := strings.Cut(vkey, "+")
	switch {
	case leaf && !old:
		var p auditlog.InclusionProof
		if err := decodeStrict(data, &p); err != nil {
			return fmt.Errorf("audit check: %s: %w", files[0], err)
		}
		if err := auditlog.CheckInclusion(vkey, p); err != nil {
			return fmt.Errorf("audit check: %s: %w", files[0], err)
		}
		return printInclusion(stdout, p, keyName)
	case old && !leaf:
		var p auditlog.ConsistencyProof
		if err := decodeStrict(data, &p); err != nil {
			return fmt.Errorf("audit check: %s: %w", files[0], err)
		}
		if err := auditlog.CheckConsistency(vkey, p); err != nil {
			return fmt.Errorf("audit check: %s: %w", files[0], err)
		}
		oldCp, newCp := noteCheckpoint(p.Old), noteCheckpoint(p.New)
		fmt.Fprintf(stdout, "consistency proof OK, checked with key %s\n"+
			"  tenant:  %s\n  older:   %s\n  newer:   %s\n"+
			"  the log of %d events begins with the log of %d events: none of the %d was changed, removed or reordered\n",
			keyName, p.Tenant, oldCp, newCp, newCp.size, oldCp.size, oldCp.size)
		return nil
	default:
		return fmt.Errorf("audit check: %s is neither an inclusion proof (idvault audit prove) nor a consistency proof (idvault audit consistency)", files[0])
	}
}

func decodeStrict(data []byte, v any) error {
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		return fmt.Errorf("malformed proof: %w", err)
	}
	if dec.More() {
		return errors.New("malformed proof: data after the proof")
	}
	return nil
}

// printInclusion writes what a checked inclusion proof proves.
func printInclusion(w io.Writer, p auditlog.InclusionProof, keyName string) error {
	lf, err := auditlog.ParseLeaf(p.Leaf)
	if err != nil {
		return fmt.Errorf("audit check: %w", err)
	}
	action := lf.Index[auditlog.IndexAction]
	if action == "" {
		var ev struct{ Action string }
		if json.Unmarshal(lf.Data, &ev) == nil {
			action = ev.Action
		}
	}
	cp := noteCheckpoint(p.Checkpoint)
	_, err = fmt.Fprintf(w, "inclusion proof OK, checked with key %s\n"+
		"  tenant:     %s\n  position:   %d of %d\n  event:      %s\n  action:     %s\n  time:       %s\n  checkpoint: %s\n",
		keyName, p.Tenant, p.Index, cp.size, lf.ID, action, lf.Time.UTC().Format(time.RFC3339Nano), cp)
	return err
}

// checkpointText is the body of a checkpoint note whose signature was
// checked already.
type checkpointText struct {
	origin, root string
	size         int64
}

func (c checkpointText) String() string {
	return fmt.Sprintf("%s, size %d, root %s", c.origin, c.size, c.root)
}

// noteCheckpoint reads the body of a signed checkpoint note that
// auditlog.CheckInclusion or CheckConsistency accepted.
func noteCheckpoint(signed string) checkpointText {
	text, _, _ := strings.Cut(signed, "\n\n")
	lines := strings.SplitN(text, "\n", 3)
	for len(lines) < 3 {
		lines = append(lines, "")
	}
	size, _ := strconv.ParseInt(lines[1], 10, 64)
	return checkpointText{origin: lines[0], size: size, root: lines[2]}
}

// auditKeygen makes a checkpoint signing key: it reads no configuration.
func auditKeygen(args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("audit keygen", flag.ContinueOnError)
	fs.SetOutput(stdout)
	name := fs.String("name", "", "the key's name, conventionally audit.origin (for example id.example.com/audit)")
	out := fs.String("out", "", "write the private key to this new file (mode 0600; an existing file is never overwritten)")
	fs.Usage = func() {
		fmt.Fprint(stdout, "Usage: idvault audit keygen --name NAME [--out FILE]\n\n"+
			"Makes a new Ed25519 checkpoint signing key in signed-note form. With --out the private key\n"+
			"goes to FILE and standard output gets the public key; without it standard output gets the\n"+
			"private key, then the public key: the public key is always the last line. Reference the\n"+
			"private key as audit.signingKey (file:FILE or env:NAME); give auditors the public key.\n\nFlags:\n")
		fs.PrintDefaults()
	}
	if err := parse(fs, args); err != nil {
		return err
	}
	if *name == "" {
		return errors.New("audit keygen: --name is required")
	}
	skey, vkey, err := auditlog.GenerateKey(*name)
	if err == nil {
		// GenerateKey takes any name; the signer refuses one with spaces
		// or '+' that no verifier could name.
		_, err = note.NewSigner(skey)
	}
	if err != nil {
		return fmt.Errorf("audit keygen: --name %q: not a key name (no spaces or '+'): %w", *name, err)
	}
	if *out == "" {
		fmt.Fprintln(stderr, "idvault: the first line is the PRIVATE signing key: put it in your secret store, never in the configuration file")
		_, err := fmt.Fprintf(stdout, "%s\n%s\n", skey, vkey)
		return err
	}
	if err := writeNewFile(*out, []byte(skey+"\n")); err != nil {
		return fmt.Errorf("audit keygen: %w", err)
	}
	fmt.Fprintf(stderr, "idvault: wrote the private signing key to %s (mode 0600); set audit.signingKey: file:%s\n", *out, *out)
	_, err = fmt.Fprintln(stdout, vkey)
	return err
}

// writeNewFile writes data to a file that must not exist yet, mode 0600,
// and syncs it; on failure it removes what it made.
func writeNewFile(path string, data []byte) error {
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if errors.Is(err, os.ErrExist) {
		return fmt.Errorf("%s already exists: refusing to overwrite it", path)
	}
	if err != nil {
		return err
	}
	_, err = f.Write(data)
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		if rerr := os.Remove(path); rerr != nil {
			return fmt.Errorf("write %s: %w (and remove it: %w)", path, err, rerr)
		}
		return fmt.Errorf("write %s: %w", path, err)
	}
	return nil
}
