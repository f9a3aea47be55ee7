// Package cli implements the idvault command line: serve, init, config
// check, keys, tenant, user, audit and version.
package cli

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os/signal"
	"runtime/debug"
	"strings"
	"syscall"

	"github.com/idvault/idvault/internal/config"
	"github.com/idvault/idvault/internal/server"
)

// Version is the release version, set at build time with
// -ldflags "-X github.com/idvault/idvault/internal/cli.Version=v1.2.3".
var Version = "dev"

const usage = `idvault — self-hostable identity verification

Usage:
  idvault serve [flags]          run the platform (all roles by default)
  idvault init [flags]           create the data directory, root key and first tenant
  idvault config check [flags]   validate and print the effective configuration
  idvault keys status|rotate|rewrap|retire|migrate [flags]
                                 manage root keys (see docs/keys.md)
  idvault tenant create|list|suspend|resume [flags]
                                 manage tenants (platform operator)
  idvault user create|list|disable|enable|reset-mfa --tenant ID [flags]
                                 manage a tenant's users
  idvault audit verify|prove|consistency|check|checkpoint|export|public-key|keygen [flags]
                                 verify, prove and export the audit log (see docs/audit-log.md)
  idvault version                print the version

Run "idvault <command> --help" for a command's flags.
Configuration: a YAML file (--config) plus IDVAULT_* environment overrides;
see docs/configuration.md.
`

// Run runs the command line args and returns the process exit code.
func Run(ctx context.Context, args []string, stdout, stderr io.Writer, environ []string) int {
	if len(args) == 0 {
		fmt.Fprint(stderr, usage)
		return 2
	}
	var err error
	switch args[0] {
	case "serve":
		err = serve(ctx, args[1:], stdout, stderr, environ)
	case "init":
		err = initCmd(ctx, args[1:], stdout, stderr, environ)
	case "config":
		if len(args) < 2 || args[1] != "check" {
			if len(args) >= 2 && isHelp(args[1]) {
				fmt.Fprint(stdout, "Usage: idvault config check [--config FILE] [--data-dir DIR] [--listen ADDR]\n")
				return 0
			}
			fmt.Fprint(stderr, "Usage: idvault config check [flags]\n")
			return 2
		}
		err = configCheck(args[2:], stdout, environ)
	case "keys":
		err = keysCmd(ctx, args[1:], stdout, stderr, environ)
	case "tenant":
		err = tenantCmd(ctx, args[1:], stdout, stderr, environ)
	case "user":
		err = userCmd(ctx, args[1:], stdout, stderr, environ)
	case "audit":
		err = auditCmd(ctx, args[1:], stdout, stderr, environ)
	case "version":
		err = version(args[1:], stdout)
	case "-h", "--help", "help":
		fmt.Fprint(stdout, usage)
		return 0
	default:
		fmt.Fprintf(stderr, "idvault: unknown command %q\n\n%s", args[0], usage)
		return 2
	}
	switch {
	case err == nil:
		return 0
	case errors.Is(err, flag.ErrHelp):
		return 0
	case errors.Is(err, errUsage):
		return 2
	default:
		fmt.Fprintf(stderr, "idvault: %v\n", err)
		return 1
	}
}

var errUsage = errors.New("usage")

func isHelp(a string) bool { return a == "-h" || a == "--help" || a == "help" }

// common holds the flags every config-reading command takes.
type common struct {
	config, dataDir, listen string
}

func newFlags(name, summary string, out io.Writer, c *common) *flag.FlagSet {
	fs := flag.NewFlagSet(name, flag.ContinueOnError)
	fs.SetOutput(out)
	fs.StringVar(&c.config, "config", "", "YAML configuration file (default: none, or $IDVAULT_CONFIG)")
	fs.StringVar(&c.dataDir, "data-dir", "", "data directory, overriding dataDir")
	fs.StringVar(&c.listen, "listen", "", "API listen address host:port, overriding api.listen")
	fs.Usage = func() {
		fmt.Fprintf(out, "Usage: idvault %s [flags]\n\n%s\n\nFlags:\n", name, summary)
		fs.PrintDefaults()
	}
	return fs
}

func parse(fs *flag.FlagSet, args []string) error {
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return err
		}
		return errUsage
	}
	if fs.NArg() > 0 {
		fmt.Fprintf(fs.Output(), "unexpected argument %q\n", fs.Arg(0))
		return errUsage
	}
	return nil
}

// load reads the configuration: defaults, then the file, then IDVAULT_*
// environment overrides, then flags; then validates it.
func (c common) load(environ []string) (config.Config, error) {
	path := c.config
	if path == "" {
		path = lookupEnv(environ, "IDVAULT_CONFIG")
	}
	if c.dataDir != "" {
		environ = override(environ, "IDVAULT_DATADIR", c.dataDir)
	}
	if c.listen != "" {
		environ = override(environ, "IDVAULT_API__LISTEN", c.listen)
	}
	cfg, err := config.Load(path, environ)
	if err != nil {
		return config.Config{}, fmt.Errorf("invalid configuration:\n%w", err)
	}
	return cfg, nil
}

// override returns environ with key (matched case-insensitively, as config
// keys are) set to value, so that a flag takes precedence over the
// environment and derived paths follow it.
func override(environ []string, key, value string) []string {
	out := make([]string, 0, len(environ)+1)
	for _, kv := range environ {
		if k, _, _ := strings.Cut(kv, "="); !strings.EqualFold(k, key) {
			out = append(out, kv)
		}
	}
	return append(out, key+"="+value)
}

func lookupEnv(environ []string, key string) string {
	for _, kv := range environ {
		if k, v, ok := strings.Cut(kv, "="); ok && k == key {
			return v
		}
	}
	return ""
}

func newLogger(cfg config.Config, w io.Writer) *slog.Logger {
	opts := &slog.HandlerOptions{Level: cfg.Log.SlogLevel()}
	if cfg.Log.Format == "text" {
		return slog.New(slog.NewTextHandler(w, opts))
	}
	return slog.New(slog.NewJSONHandler(w, opts))
}

func serve(ctx context.Context, args []string, stdout, stderr io.Writer, environ []string) error {
	var c common
	var roles string
	fs := newFlags("serve", "Runs the platform: the roles api, workflow, scheduler, audit and indexer (all by default).\n"+
		"In dev mode an empty data directory is initialised first and its credentials printed once.\n"+
		"SIGTERM or SIGINT stops accepting requests, finishes those in flight, then exits.", stdout, &c)
	fs.StringVar(&roles, "roles", "", "comma-separated roles to run (default: roles from the configuration, all five)")
	if err := parse(fs, args); err != nil {
		return err
	}
	cfg, err := c.load(environ)
	if err != nil {
		return err
	}
	if roles != "" {
		cfg.Roles = nil
		for _, r := range strings.Split(roles, ",") {
			cfg.Roles = append(cfg.Roles, config.Role(strings.TrimSpace(r)))
		}
		if err := cfg.Validate(); err != nil {
			return fmt.Errorf("--roles: %w", err)
		}
	}
	log := newLogger(cfg, stderr)
	tuneGC(environ)
	ctx, stop := signal.NotifyContext(ctx, syscall.SIGINT, syscall.SIGTERM)
	defer stop()

	srv, err := server.Open(ctx, cfg, log, cfg.Mode == config.ModeDev)
	if err != nil {
		return err
	}
	defer srv.Close()
	printKeyWarning(stdout, srv.RootKeyCreated)
	done, err := srv.Initialized(ctx)
	if err != nil {
		return err
	}
	if !done {
		if cfg.Mode != config.ModeDev {
			return errors.New("no tenant: run idvault init first")
		}
		res, err := srv.Init(ctx)
		if err != nil {
			return fmt.Errorf("init: %w", err)
		}
		printInit(stdout, res)
	}
	err = srv.Run(ctx, cfg.Roles, func(addr net.Addr, fp string) {
		log.Info("api listening", "addr", addr.String(), "url", cfg.API.PublicURL, "certSHA256", fp)
		fmt.Fprintf(stdout, "idvault: serving %s on %s (roles %s); TLS certificate SHA-256 %s\n", cfg.API.PublicURL, addr, joinRoles(cfg.Roles), fp)
	})
	log.Info("shut down")
	return err
}

// serveGCPercent is the garbage collector's target for idvault serve,
// instead of Go's 100: the server's live heap is small (tens of MiB) and
// its requests allocate a lot of short-lived memory, so collecting when the
// heap has grown by four times its live size instead of once costs a few
// tens of MiB and saves a few percent of the CPU under load.
const serveGCPercent = 400

// tuneGC sets the garbage collector's target to serveGCPercent unless the
// operator chose one with GOGC.
func tuneGC(environ []string) {
	for _, kv := range environ {
		if strings.HasPrefix(kv, "GOGC=") {
			return
		}
	}
	debug.SetGCPercent(serveGCPercent)
}

func joinRoles(rs []config.Role) string {
	s := make([]string, len(rs))
	for i, r := range rs {
		s[i] = string(r)
	}
	return strings.Join(s, ",")
}

func printKeyWarning(w io.Writer, path string) {
	if path == "" {
		return
	}
	fmt.Fprintf(w, "idvault: generated a new 256-bit root key in %s\n"+
		"  LOSING THIS KEY LOSES ALL DATA. Back it up now, apart from the data directory;\n"+
		"  it is never stored anywhere else. This message is shown once.\n", path)
}

func printInit(w io.Writer, r server.InitResult) {
	fmt.Fprintf(w, "idvault: initialised the first tenant. These credentials are shown once; store them now.\n"+
		"  tenant id:      %s\n  admin user:     %s\n  admin password: %s\n  API key:        %s\n  URL:            %s\n",
		r.TenantID, r.AdminUser, r.AdminPassword, r.APIKey, r.URL)
}

func initCmd(ctx context.Context, args []string, stdout, stderr io.Writer, environ []string) error {
	var c common
	var asJSON bool
	fs := newFlags("init", "Creates the data directory, generates a root key when none is configured, and creates the\n"+
		"first tenant with its admin user (one-time password) and an API key, printed once.", stdout, &c)
	fs.BoolVar(&asJSON, "json", false, `print exactly one JSON object {"tenantId","adminUser","adminPassword","apiKey","url"}`)
	if err := parse(fs, args); err != nil {
		return err
	}
	cfg, err := c.load(environ)
	if err != nil {
		return err
	}
	log := newLogger(cfg, stderr)
	srv, err := server.Open(ctx, cfg, log, true)
	if err != nil {
		return err
	}
	defer srv.Close()
	res, err := srv.Init(ctx)
	if err != nil {
		return err
	}
	if asJSON {
		printKeyWarning(stderr, srv.RootKeyCreated)
		return json.NewEncoder(stdout).Encode(res)
	}
	printKeyWarning(stdout, srv.RootKeyCreated)
	printInit(stdout, res)
	return nil
}

func configCheck(args []string, stdout io.Writer, environ []string) error {
	var c common
	fs := newFlags("config check", "Validates the configuration, reporting every problem at once, and prints the effective\n"+
		"configuration with secrets redacted.", stdout, &c)
	if err := parse(fs, args); err != nil {
		return err
	}
	cfg, err := c.load(environ)
	if err != nil {
		return err
	}
	out, err := cfg.Redacted()
	if err != nil {
		return err
	}
	_, err = stdout.Write(out)
	return err
}

func version(args []string, stdout io.Writer) error {
	if len(args) > 0 {
		if isHelp(args[0]) {
			fmt.Fprint(stdout, "Usage: idvault version\n\nPrints the version, the Go version and the VCS revision.\n")
			return nil
		}
		return errUsage
	}
	rev := "unknown"
	goVersion := "unknown"
	if bi, ok := debug.ReadBuildInfo(); ok {
		goVersion = bi.GoVersion
		for _, s := range bi.Settings {
			if s.Key == "vcs.revision" {
				rev = s.Value
			}
		}
	}
	fmt.Fprintf(stdout, "idvault %s (%s, revision %s)\n", Version, goVersion, rev)
	return nil
}
