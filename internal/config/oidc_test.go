package config

import (
	"reflect"
	"slices"
	"strings"
	"testing"
)

const (
	testTenant = "0190f3a4-5b6c-7d8e-9f01-23456789abcd"
	testGroup  = "0190f3a4-5b6c-7d8e-9f01-23456789ef01"
)

// withProvider returns a valid production configuration with one OIDC
// provider, changed by change.
func withProvider(change func(*OIDCProvider)) func(*Config) {
	return func(c *Config) {
		*c = production()
		p := OIDCProvider{
			Name: "corp", Tenant: testTenant, Issuer: "https://login.example.com/tenant-1", ClientID: "idvault",
			ClientSecret: "env:IDVAULT_OIDC_CORP_SECRET", RedirectURL: "https://id.example.com/api/v1/auth/oidc/corp/callback",
			Scopes: []string{"email", "groups"},
			ClaimMappings: ClaimMappings{RolesClaim: "groups", GroupsClaim: "groups",
				Roles: map[string]string{"idv-admins": "admin", "idv-reviewers": "verifier", "idv-kyc": "kyc-lead"}, Groups: map[string]string{"team-a": testGroup}},
			AllowedDomains: []string{"example.com"},
		}
		if change != nil {
			change(&p)
		}
		c.Auth.OIDC.Providers = []OIDCProvider{p}
	}
}

func TestValidateOIDC(t *testing.T) {
	tests := []struct {
		name   string
		change func(*Config)
		want   []string
	}{
		{"valid", withProvider(nil), nil},
		{"bad name", withProvider(func(p *OIDCProvider) { p.Name = "Corp SSO"; p.RedirectURL = "" }), []string{"auth.oidc.providers[0].name", "auth.oidc.providers[0].redirectUrl"}},
		{"bad tenant", withProvider(func(p *OIDCProvider) { p.Tenant = "tenant-a" }), []string{"auth.oidc.providers[0].tenant"}},
		{"http issuer in production", withProvider(func(p *OIDCProvider) { p.Issuer = "http://127.0.0.1:5556" }), []string{"auth.oidc.providers[0].issuer"}},
		{"issuer with query", withProvider(func(p *OIDCProvider) { p.Issuer = "https://login.example.com/?tenant=1" }), []string{"auth.oidc.providers[0].issuer"}},
		{"relative issuer", withProvider(func(p *OIDCProvider) { p.Issuer = "login.example.com" }), []string{"auth.oidc.providers[0].issuer"}},
		{"no client id", withProvider(func(p *OIDCProvider) { p.ClientID = "" }), []string{"auth.oidc.providers[0].clientId"}},
		{"literal secret in production", withProvider(func(p *OIDCProvider) { p.ClientSecret = "s3cret" }), []string{"auth.oidc.providers[0].clientSecret"}},
		{"no secret", withProvider(func(p *OIDCProvider) { p.ClientSecret = "" }), []string{"auth.oidc.providers[0].clientSecret"}},
		{"redirect to another host", withProvider(func(p *OIDCProvider) { p.RedirectURL = "https://evil.example.net/api/v1/auth/oidc/corp/callback" }), []string{"auth.oidc.providers[0].redirectUrl"}},
		{"redirect to another provider's callback", withProvider(func(p *OIDCProvider) { p.RedirectURL = "https://id.example.com/api/v1/auth/oidc/other/callback" }), []string{"auth.oidc.providers[0].redirectUrl"}},
		{"scope with space", withProvider(func(p *OIDCProvider) { p.Scopes = []string{"email groups"} }), []string{"auth.oidc.providers[0].scopes[0]"}},
		{"no role mapping", withProvider(func(p *OIDCProvider) { p.ClaimMappings.Roles = nil }), []string{"auth.oidc.providers[0].claimMappings.roles"}},
		{"roles without claim", withProvider(func(p *OIDCProvider) { p.ClaimMappings.RolesClaim = "" }), []string{"auth.oidc.providers[0].claimMappings.rolesClaim"}},
		{"groups without claim", withProvider(func(p *OIDCProvider) { p.ClaimMappings.GroupsClaim = "" }), []string{"auth.oidc.providers[0].claimMappings.groupsClaim"}},
		{"device role", withProvider(func(p *OIDCProvider) { p.ClaimMappings.Roles["phones"] = "device" }), []string{`auth.oidc.providers[0].claimMappings.roles["phones"]`}},
		{"malformed role", withProvider(func(p *OIDCProvider) { p.ClaimMappings.Roles["x"] = "Super Admin" }), []string{`auth.oidc.providers[0].claimMappings.roles["x"]`}},
		{"empty claim value", withProvider(func(p *OIDCProvider) { p.ClaimMappings.Roles[""] = "verifier" }), []string{`auth.oidc.providers[0].claimMappings.roles[""]`}},
		{"group not an id", withProvider(func(p *OIDCProvider) { p.ClaimMappings.Groups["team-a"] = "Team A" }), []string{`auth.oidc.providers[0].claimMappings.groups["team-a"]`}},
		{"bad domain", withProvider(func(p *OIDCProvider) { p.AllowedDomains = []string{"@example.com"} }), []string{"auth.oidc.providers[0].allowedDomains[0]"}},
		{"duplicate name", func(c *Config) {
			withProvider(nil)(c)
			c.Auth.OIDC.Providers = append(c.Auth.OIDC.Providers, c.Auth.OIDC.Providers[0])
		}, []string{"auth.oidc.providers[1].name"}},
		{"http loopback issuer and literal secret in dev", func(c *Config) {
			withProvider(func(p *OIDCProvider) { p.Issuer, p.ClientSecret = "http://127.0.0.1:5556", "s3cret" })(c)
			c.Mode = ModeDev
		}, nil},
		{"http issuer on another host in dev", func(c *Config) {
			withProvider(func(p *OIDCProvider) { p.Issuer = "http://login.example.com" })(c)
			c.Mode = ModeDev
		}, []string{"auth.oidc.providers[0].issuer"}},
		{"http public URL", func(c *Config) {
			withProvider(func(p *OIDCProvider) { p.RedirectURL = "http://localhost:8443/api/v1/auth/oidc/corp/callback" })(c)
			c.Mode, c.API.PublicURL = ModeDev, "http://localhost:8443"
		}, []string{"auth.oidc.providers[0].redirectUrl"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := Default()
			tt.change(&c)
			err := c.Validate()
			if got := keysOf(problemsOf(t, err)); !slices.Equal(got, tt.want) {
				t.Fatalf("Validate() problem keys = %q, want %q (error %v)", got, tt.want, err)
			}
		})
	}
}

const providerYAML = `mode: production
api:
  publicURL: https://id.example.com
  tls: {certFile: /c.pem, keyFile: /k.pem}
crypto:
  rootKey: env:IDVAULT_ROOT_KEY
audit:
  signingKey: env:IDVAULT_AUDIT_KEY
auth:
  oidc:
    providers:
      - name: corp
        tenant: ` + testTenant + `
        issuer: https://login.example.com
        clientId: idvault
        clientSecret: file:/run/secrets/oidc-corp
        scopes: [groups]
        claimMappings:
          rolesClaim: groups
          roles: {idv-admins: admin}
`

func TestLoadOIDC(t *testing.T) {
	c, err := Load(writeConfig(t, providerYAML), nil)
	if err != nil {
		t.Fatalf("Load() error = %v", err)
	}
	ps := c.Auth.OIDC.Providers
	if len(ps) != 1 || ps[0].RedirectURL != "https://id.example.com/api/v1/auth/oidc/corp/callback" ||
		ps[0].ClaimMappings.Roles["idv-admins"] != "admin" || string(ps[0].ClientSecret) != "file:/run/secrets/oidc-corp" {
		t.Fatalf("Load() providers = %+v, want corp with a derived redirectUrl", ps)
	}

	env := []string{"IDVAULT_AUTH__OIDC__PROVIDERS=[{name: sso, tenant: " + testTenant + ", issuer: 'https://idp.example.org', clientId: c, clientSecret: 'env:S', claimMappings: {rolesClaim: roles, roles: {r: auditor}}}]"}
	c, err = Load(writeConfig(t, providerYAML), env)
	if err != nil {
		t.Fatalf("Load(%q) error = %v", env, err)
	}
	if ps := c.Auth.OIDC.Providers; len(ps) != 1 || ps[0].Name != "sso" || ps[0].ClaimMappings.Roles["r"] != "auditor" {
		t.Fatalf("Load(env) providers = %+v, want the one from the variable", ps)
	}
}

func TestLoadOIDCUnknownKeys(t *testing.T) {
	tests := []struct {
		name, old, new string
		want           []string
	}{
		{"in a provider", "clientId: idvault", "clientID: idvault", []string{"auth.oidc.providers: unknown key clientID at line 15 (did you mean clientId?)"}},
		{"in the mappings", "rolesClaim: groups", "roleClaim: groups", []string{"auth.oidc.providers: unknown key roleClaim at line 19"}},
		{"a provider as a scalar", "providers:\n      - name: corp", "providers:\n      - corp\n      - name: corp", []string{"auth.oidc.providers: want a list of mappings"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := Load(writeConfig(t, strings.Replace(providerYAML, tt.old, tt.new, 1)), nil)
			for _, w := range tt.want {
				if err == nil || !strings.Contains(err.Error(), w) {
					t.Errorf("Load() error = %v, want it to contain %q", err, w)
				}
			}
		})
	}
}

func TestRedactedOIDCSecret(t *testing.T) {
	const literal = "literal-oidc-client-secret"
	c := Default()
	withProvider(func(p *OIDCProvider) { p.ClientSecret = literal })(&c)
	out, err := c.Redacted()
	if err != nil {
		t.Fatalf("Redacted() error = %v", err)
	}
	if strings.Contains(string(out), literal) || !strings.Contains(string(out), "clientSecret: REDACTED") {
		t.Fatalf("Redacted() = %s, want clientSecret: REDACTED and no literal", out)
	}
	withProvider(nil)(&c)
	out, err = c.Redacted()
	if err != nil {
		t.Fatalf("Redacted() error = %v", err)
	}
	back, err := Load(writeConfig(t, string(out)), nil)
	if err != nil {
		t.Fatalf("Load(Redacted()) error = %v", err)
	}
	if !reflect.DeepEqual(back.Auth, c.Auth) {
		t.Fatalf("Load(Redacted()).Auth = %+v, want %+v", back.Auth, c.Auth)
	}
}
