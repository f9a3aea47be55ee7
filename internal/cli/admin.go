package cli

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"github.com/idvault/idvault/internal/audit"
	"io"
	"os"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/idvault/idvault/internal/authz"
	"github.com/idvault/idvault/internal/identity"
	"github.com/idvault/idvault/internal/server"
	"github.com/idvault/idvault/internal/store"
)

const tenantUsage = `Usage: idvault tenant <command> [flags]

Platform operator commands. They manage tenants; they never read a tenant's
data.

Commands:
  create --name NAME [--json]   create a tenant with its admin user and an admin
                                API key (printed once)
  list [--json]                 every tenant, its status and creation time
  suspend --id ID               suspend a tenant: its credentials stop working
  resume --id ID                make a suspended tenant active again

Every command takes --config, --data-dir and --listen like serve.
`

const userUsage = `Usage: idvault user <command> --tenant ID [flags]

Commands:
  create --username NAME --role ROLE [--json]
                                create a user with a one-time password
                                (printed once); ROLE: admin, verifier,
                                auditor or integration
  list [--json]                 every user of the tenant
  disable --username NAME       the user can no longer sign in; its tokens stop
  enable --username NAME        undo disable
  reset-mfa --username NAME     remove the user's TOTP second factor (a lost
                                device); the user enrols again

Every command takes --config, --data-dir and --listen like serve.
`

// adminCmd runs one tenant or user command: it parses flags with extra,
// opens the server and calls run.
func adminCmd(ctx context.Context, name, usage string, args []string, stdout, stderr io.Writer, environ []string,
	commands map[string]func(fs *flag.FlagSet) func(ctx context.Context, srv *server.Server) error) error {
	if len(args) == 0 {
		fmt.Fprint(stderr, usage)
		return errUsage
	}
	if isHelp(args[0]) {
		fmt.Fprint(stdout, usage)
		return nil
	}
	mk, ok := commands[args[0]]
	if !ok {
		fmt.Fprintf(stderr, "idvault %s: unknown command %q\n\n%s", name, args[0], usage)
		return errUsage
	}
	var c common
	fs := newFlags(name+" "+args[0], "See idvault "+name+" --help.", stdout, &c)
	run := mk(fs)
	if err := parse(fs, args[1:]); err != nil {
		return err
	}
	cfg, err := c.load(environ)
	if err != nil {
		return err
	}
	srv, err := server.Open(ctx, cfg, newLogger(cfg, stderr), false)
	if err != nil {
		return err
	}
	defer srv.Close()
	return run(ctx, srv)
}

func tenantCmd(ctx context.Context, args []string, stdout, stderr io.Writer, environ []string) error {
	return adminCmd(ctx, "tenant", tenantUsage, args, stdout, stderr, environ, map[string]func(*flag.FlagSet) func(context.Context, *server.Server) error{
		"create": func(fs *flag.FlagSet) func(context.Context, *server.Server) error {
			name := fs.String("name", "", "the tenant's name (not personal data)")
			asJSON := fs.Bool("json", false, "print one JSON object")
			return func(ctx context.Context, srv *server.Server) error {
				if strings.TrimSpace(*name) == "" {
					return errors.New("tenant create: --name is required")
				}
				res, err := srv.CreateTenant(ctx, *name)
				if err != nil {
					return err
				}
				if err := record(ctx, srv, audit.Event{Action: "tenant.create", Resource: audit.Resource{Type: "tenant", ID: res.TenantID}}); err != nil {
					return err
				}
				if *asJSON {
					return json.NewEncoder(stdout).Encode(res)
				}
				printInit(stdout, res)
				return nil
			}
		},
		"list": func(fs *flag.FlagSet) func(context.Context, *server.Server) error {
			asJSON := fs.Bool("json", false, "print JSON")
			return func(ctx context.Context, srv *server.Server) error {
				var all []identity.Tenant
				if err := srv.Identity.Tenants(ctx, func(t identity.Tenant) error { all = append(all, t); return nil }); err != nil {
					return err
				}
				if *asJSON {
					return json.NewEncoder(stdout).Encode(all)
				}
				tw := tabwriter.NewWriter(stdout, 0, 4, 2, ' ', 0)
				fmt.Fprintln(tw, "TENANT\tNAME\tSTATUS\tCREATED")
				for _, t := range all {
					fmt.Fprintf(tw, "%s\t%s\t%s\t%s\n", t.ID, t.Name, t.Status, t.CreatedAt.Format(time.RFC3339))
				}
				return tw.Flush()
			}
		},
		"suspend": tenantStatus(stdout, identity.TenantSuspended),
		"resume":  tenantStatus(stdout, identity.TenantActive),
	})
}

func tenantStatus(stdout io.Writer, status string) func(fs *flag.FlagSet) func(context.Context, *server.Server) error {
	return func(fs *flag.FlagSet) func(context.Context, *server.Server) error {
		id := fs.String("id", "", "the tenant id")
		return func(ctx context.Context, srv *server.Server) error {
			err := srv.Identity.SetTenantStatus(ctx, *id, status)
			if errors.Is(err, store.ErrNotFound) || errors.Is(err, store.ErrInvalid) {
				return fmt.Errorf("no tenant %q", *id)
			}
			if err != nil {
				return err
			}
			if err := record(ctx, srv, audit.Event{Action: "tenant.status", Resource: audit.Resource{Type: "tenant", ID: *id},
				Details: map[string]string{"status": status}}); err != nil {
				return err
			}
			fmt.Fprintf(stdout, "idvault: tenant %s is %s\n", *id, status)
			return nil
		}
	}
}

func userCmd(ctx context.Context, args []string, stdout, stderr io.Writer, environ []string) error {
	tenantFlag := func(fs *flag.FlagSet) *string { return fs.String("tenant", "", "the tenant id") }
	need := func(tenant *string) error {
		if *tenant == "" {
			return errors.New("--tenant is required")
		}
		return nil
	}
	return adminCmd(ctx, "user", userUsage, args, stdout, stderr, environ, map[string]func(*flag.FlagSet) func(context.Context, *server.Server) error{
		"create": func(fs *flag.FlagSet) func(context.Context, *server.Server) error {
			tenant := tenantFlag(fs)
			username := fs.String("username", "", "the username")
			role := fs.String("role", "", "the user's role: admin, verifier, auditor or integration")
			asJSON := fs.Bool("json", false, "print one JSON object")
			return func(ctx context.Context, srv *server.Server) error {
				if err := need(tenant); err != nil {
					return err
				}
				if _, ok := authz.RolePermissions(*role); !ok || *role == authz.RoleDevice {
					return errors.New("user create: --role must be admin, verifier, auditor or integration")
				}
				if _, err := srv.Identity.Tenant(ctx, *tenant); err != nil {
					return fmt.Errorf("no tenant %q", *tenant)
				}
				pw, err := server.NewPassword()
				if err != nil {
					return err
				}
				u, err := srv.Identity.CreateUser(ctx, *tenant, *username, pw, []string{*role})
				if err != nil {
					return err
				}
				if err := record(ctx, srv, audit.Event{Tenant: *tenant, Action: "user.create", Resource: audit.Resource{Type: "user", ID: u.ID},
					Details: map[string]string{"roles": *role}}); err != nil {
					return err
				}
				out := map[string]string{"tenantId": *tenant, "userId": u.ID, "username": u.Username.Value(), "password": pw}
				if *asJSON {
					return json.NewEncoder(stdout).Encode(out)
				}
				fmt.Fprintf(stdout, "idvault: created user %s (%s). One-time password, shown once: %s\n", u.Username.Value(), u.ID, pw)
				return nil
			}
		},
		"list": func(fs *flag.FlagSet) func(context.Context, *server.Server) error {
			tenant := tenantFlag(fs)
			asJSON := fs.Bool("json", false, "print JSON")
			return func(ctx context.Context, srv *server.Server) error {
				if err := need(tenant); err != nil {
					return err
				}
				type row struct {
					ID       string    `json:"id"`
					Username string    `json:"username"`
					Roles    []string  `json:"roles"`
					Disabled bool      `json:"disabled"`
					Created  time.Time `json:"createdAt"`
				}
				var rows []row
				if err := srv.Identity.Users(ctx, *tenant, func(u identity.User) error {
					rows = append(rows, row{u.ID, u.Username.Value(), u.Roles, u.Disabled, u.CreatedAt})
					return nil
				}); err != nil {
					return err
				}
				if err := record(ctx, srv, audit.Event{Tenant: *tenant, Action: "user.list", Resource: audit.Resource{Type: "user"},
					Details: map[string]string{"count": strconv.Itoa(len(rows))}}); err != nil {
					return err
				}
				if *asJSON {
					return json.NewEncoder(stdout).Encode(rows)
				}
				tw := tabwriter.NewWriter(stdout, 0, 4, 2, ' ', 0)
				fmt.Fprintln(tw, "USER\tUSERNAME\tROLES\tDISABLED\tCREATED")
				for _, r := range rows {
					fmt.Fprintf(tw, "%s\t%s\t%s\t%v\t%s\n", r.ID, r.Username, strings.Join(r.Roles, ","), r.Disabled, r.Created.Format(time.RFC3339))
				}
				return tw.Flush()
			}
		},
		"reset-mfa": func(fs *flag.FlagSet) func(context.Context, *server.Server) error {
			tenant := tenantFlag(fs)
			username := fs.String("username", "", "the username")
			return func(ctx context.Context, srv *server.Server) error {
				if err := need(tenant); err != nil {
					return err
				}
				err := srv.Identity.ResetTOTP(ctx, *tenant, *username)
				if errors.Is(err, store.ErrNotFound) || errors.Is(err, store.ErrInvalid) {
					return fmt.Errorf("no user %q in tenant %q", *username, *tenant)
				}
				if err != nil {
					return err
				}
				if err := record(ctx, srv, audit.Event{Tenant: *tenant, Action: "user.reset_mfa", Resource: audit.Resource{Type: "user"}}); err != nil {
					return err
				}
				fmt.Fprintf(stdout, "idvault: the second factor of %s is removed; the user must enrol again\n", *username)
				return nil
			}
		},
		"disable": userDisabled(stdout, tenantFlag, need, true),
		"enable":  userDisabled(stdout, tenantFlag, need, false),
	})
}

func userDisabled(stdout io.Writer, tenantFlag func(*flag.FlagSet) *string, need func(*string) error, disabled bool) func(fs *flag.FlagSet) func(context.Context, *server.Server) error {
	return func(fs *flag.FlagSet) func(context.Context, *server.Server) error {
		tenant := tenantFlag(fs)
		username := fs.String("username", "", "the username")
		return func(ctx context.Context, srv *server.Server) error {
			if err := need(tenant); err != nil {
				return err
			}
			err := srv.Identity.SetUserDisabled(ctx, *tenant, *username, disabled)
			if errors.Is(err, store.ErrNotFound) || errors.Is(err, store.ErrInvalid) {
				return fmt.Errorf("no user %q in tenant %q", *username, *tenant)
			}
			if err != nil {
				return err
			}
			state := "enabled"
			if disabled {
				state = "disabled"
			}
			if err := record(ctx, srv, audit.Event{Tenant: *tenant, Action: "user." + strings.TrimSuffix(state, "d"), Resource: audit.Resource{Type: "user"}}); err != nil {
				return err
			}
			fmt.Fprintf(stdout, "idvault: user %s is %s\n", *username, state)
			return nil
		}
	}
}

// record writes an audit event for a change or a read made from the command
// line. The actor is the operating-system account that ran the command (its
// uid: the platform's own tenant records the rest of the context).
func record(ctx context.Context, srv *server.Server, ev audit.Event) error {
	ev.Actor = audit.Actor{Type: "operator", ID: "cli/uid:" + strconv.Itoa(os.Getuid())}
	if ev.Outcome == "" {
		ev.Outcome = audit.Success
	}
	if err := srv.Audit.Emit(ctx, ev); err != nil {
		return fmt.Errorf("the change is made but its audit event could not be written: %w", err)
	}
	return nil
}
