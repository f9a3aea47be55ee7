package cli

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"github.com/idvault/idvault/internal/audit"
	"io"
	"strconv"
	"text/tabwriter"
	"time"

	"github.com/idvault/idvault/internal/config"
	"github.com/idvault/idvault/internal/server"
)

const keysUsage = `Usage: idvault keys <command> [flags]

Commands:
  status              every root key, its state and how many data keys it wraps
  rotate [--to ID]    make root key ID primary at once (dev mode without --to:
                      generate a new root key file and make it primary)
  rewrap              re-wrap every data key under the primary root key
                      (resumable; the scheduler also does it in the background)
  retire --id ID      mark a root key retired once no data key depends on it;
                      then remove it from the configuration
  migrate --to aes256gcm
                      re-seal every Fernet-sealed record body and file key under
                      the key hierarchy (resumable; keep crypto.fernetKeys until
                      it reports nothing left, then set crypto.scheme: aes256gcm)

Every command takes --config, --data-dir and --listen like serve.
See docs/keys.md.
`

func keysCmd(ctx context.Context, args []string, stdout, stderr io.Writer, environ []string) error {
	if len(args) == 0 {
		fmt.Fprint(stderr, keysUsage)
		return errUsage
	}
	if isHelp(args[0]) {
		fmt.Fprint(stdout, keysUsage)
		return nil
	}
	var c common
	var to, id string
	var asJSON bool
	fs := newFlags("keys "+args[0], "See idvault keys --help.", stdout, &c)
	switch args[0] {
	case "status":
		fs.BoolVar(&asJSON, "json", false, "print JSON")
	case "rotate":
		fs.StringVar(&to, "to", "", "id of a configured root key to make primary")
	case "rewrap":
	case "retire":
		fs.StringVar(&id, "id", "", "id of the root key to retire")
	case "migrate":
		fs.StringVar(&to, "to", "", "target scheme: aes256gcm")
	default:
		fmt.Fprintf(stderr, "idvault keys: unknown command %q\n\n%s", args[0], keysUsage)
		return errUsage
	}
	if err := parse(fs, args[1:]); err != nil {
		return err
	}
	cfg, err := c.load(environ)
	if err != nil {
		return err
	}
	if args[0] == "rotate" && to == "" {
		if cfg.Mode != config.ModeDev || cfg.HasRootKeys() {
			return errors.New("rotate: --to ID is required: add the new key to crypto.rootKeys or crypto.kms, then name it")
		}
		if to, err = server.NewDevRootKey(cfg, time.Now()); err != nil {
			return err
		}
		fmt.Fprintf(stdout, "idvault: generated root key %q in %s\n"+
			"  LOSING THIS KEY LOSES ALL DATA WRAPPED BY IT. Back it up now, apart from the data directory.\n", to, cfg.DevKeyDir())
	}
	if args[0] == "migrate" && to != "aes256gcm" {
		return errors.New("migrate: --to aes256gcm is the only target")
	}
	if args[0] == "migrate" && cfg.Crypto.Scheme == "fernet" {
		return errors.New("migrate: set crypto.scheme to aes256gcm first (keep crypto.fernetKeys so old values open), then migrate")
	}
	if args[0] == "retire" && id == "" {
		return errors.New("retire: --id ID is required")
	}
	srv, err := server.Open(ctx, cfg, newLogger(cfg, stderr), false)
	if err != nil {
		return err
	}
	defer srv.Close()
	kr := srv.Keyring
	switch args[0] {
	case "status":
		st, err := kr.Status(ctx, srv.Tenants)
		if err != nil {
			return err
		}
		if asJSON {
			return json.NewEncoder(stdout).Encode(st)
		}
		tw := tabwriter.NewWriter(stdout, 0, 4, 2, ' ', 0)
		fmt.Fprintln(tw, "ROOT KEY\tSTATE\tCONFIGURED\tDATA KEYS\tADDED")
		for _, r := range st {
			fmt.Fprintf(tw, "%s\t%s\t%v\t%d\t%s\n", r.ID, r.State, r.Configured, r.DataKeys, r.AddedAt.Format(time.RFC3339))
		}
		return tw.Flush()
	case "rotate":
		if err := kr.Rotate(ctx, to); err != nil {
			return err
		}
		if err := record(ctx, srv, audit.Event{Action: "key.rotate", Resource: audit.Resource{Type: "root-key", ID: to}}); err != nil {
			return err
		}
		fmt.Fprintf(stdout, "idvault: root key %q is primary; new data keys are wrapped by it. Run idvault keys rewrap (or let the scheduler do it) to re-wrap existing ones.\n", to)
	case "rewrap":
		n, err := kr.Rewrap(ctx, srv.Tenants, func(done, total int) {
			fmt.Fprintf(stderr, "\rre-wrapping data keys: %d/%d", done, total)
		})
		if n > 0 {
			fmt.Fprintln(stderr)
		}
		if rerr := record(ctx, srv, audit.Event{Action: "key.rewrap", Resource: audit.Resource{Type: "data-keys"},
			Details: map[string]string{"rewrapped": strconv.Itoa(n), "complete": strconv.FormatBool(err == nil)}}); rerr != nil {
			return rerr
		}
		if err != nil {
			return fmt.Errorf("rewrap stopped after %d data keys (run it again to resume): %w", n, err)
		}
		fmt.Fprintf(stdout, "idvault: re-wrapped %d data keys under the primary root key\n", n)
	case "migrate":
		rep, err := srv.MigrateToAESGCM(ctx, func(done, scanned int) {
			fmt.Fprintf(stderr, "\rre-sealing Fernet values: %d re-sealed, %d records scanned", done, scanned)
		})
		if rep.Resealed > 0 {
			fmt.Fprintln(stderr)
		}
		if rerr := record(ctx, srv, audit.Event{Action: "key.migrate", Resource: audit.Resource{Type: "records"},
			Details: map[string]string{"resealed": strconv.Itoa(rep.Resealed), "complete": strconv.FormatBool(err == nil)}}); rerr != nil {
			return rerr
		}
		if err != nil {
			return fmt.Errorf("migrate stopped (run it again to resume): %w", err)
		}
		fmt.Fprintf(stdout, "idvault: re-sealed %d Fernet values under AES-256-GCM data keys (%d records scanned); run it again to confirm 0 are left, then remove crypto.fernetKeys\n", rep.Resealed, rep.Scanned)
	case "retire":
		if err := kr.Retire(ctx, id, srv.Tenants); err != nil {
			return err
		}
		if err := record(ctx, srv, audit.Event{Action: "key.retire", Resource: audit.Resource{Type: "root-key", ID: id}}); err != nil {
			return err
		}
		fmt.Fprintf(stdout, "idvault: root key %q is retired; remove it from the configuration (dev: delete its key file)\n", id)
	}
	return nil
}
