package config

import (
	"fmt"
	"maps"
	"net"
	"net/url"
	"reflect"
	"regexp"
	"slices"
	"strings"

	"gopkg.in/yaml.v3"

	"github.com/idvault/idvault/internal/authz"
)

// OIDCCallbackPath is the path of the callback route of the OIDC provider
// name, the only redirect URL (after api.publicURL) a provider may use.
func OIDCCallbackPath(name string) string {
	return "/api/v1/auth/oidc/" + name + "/callback"
}

// unknownKeyError is a key of a list item (such as an OIDC provider) that
// its type does not have; setLeaf reports it as it is.
type unknownKeyError struct {
	key, hint string
	line      int
}

func (e *unknownKeyError) Error() string {
	if e.hint != "" {
		return fmt.Sprintf("unknown key %s at line %d (did you mean %s?)", e.key, e.line, e.hint)
	}
	return fmt.Sprintf("unknown key %s at line %d", e.key, e.line)
}

// knownKeys checks that mapping n has only keys of struct type t, so that
// list items are decoded as strictly as the rest of the file.
func knownKeys(n *yaml.Node, t reflect.Type) error {
	n = deref(n)
	if n.Kind != yaml.MappingNode {
		return nil // Decode reports the wrong kind
	}
	for i := 0; i+1 < len(n.Content); i += 2 {
		k := n.Content[i]
		if _, ok := fieldByName(t, k.Value); ok {
			continue
		}
		e := &unknownKeyError{key: k.Value, line: k.Line}
		if g, ok := fieldFold(t, k.Value); ok {
			e.hint = g.name
		}
		return e
	}
	return nil
}

// UnmarshalYAML decodes a provider, rejecting unknown keys.
func (p *OIDCProvider) UnmarshalYAML(n *yaml.Node) error {
	if err := knownKeys(n, reflect.TypeFor[OIDCProvider]()); err != nil {
		return err
	}
	type plain OIDCProvider
	return n.Decode((*plain)(p))
}

// UnmarshalYAML decodes claim mappings, rejecting unknown keys.
func (m *ClaimMappings) UnmarshalYAML(n *yaml.Node) error {
	if err := knownKeys(n, reflect.TypeFor[ClaimMappings]()); err != nil {
		return err
	}
	type plain ClaimMappings
	return n.Decode((*plain)(m))
}

// deriveOIDC fills each provider's empty redirect URL from api.publicURL.
func (c *Config) deriveOIDC() {
	for i := range c.Auth.OIDC.Providers {
		p := &c.Auth.OIDC.Providers[i]
		if p.RedirectURL == "" && c.API.PublicURL != "" && p.Name != "" {
			p.RedirectURL = c.API.PublicURL + OIDCCallbackPath(p.Name)
		}
	}
}

var (
	providerName = regexp.MustCompile(`^[a-z0-9][a-z0-9-]{0,31}$`)
	// idPattern is the form of tenant and group ids (UUIDs as NewID
	// writes them).
	idPattern     = regexp.MustCompile(`^[0-9a-f]{8}(-[0-9a-f]{4}){3}-[0-9a-f]{12}$`)
	domainPattern = regexp.MustCompile(`^([a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?\.)+[a-z]([a-z0-9-]{0,61}[a-z0-9])?$`)
)

func (c Config) validateAuth(ps *problems, prod bool) {
	names := map[string]string{}
	for i, p := range c.Auth.OIDC.Providers {
		key := fmt.Sprintf("auth.oidc.providers[%d]", i)
		if !providerName.MatchString(p.Name) {
			ps.add(key+".name", "must be 1 to 32 characters of a-z, 0-9 and -, starting with a letter or digit, got %q", p.Name)
		} else if prev, dup := names[p.Name]; dup {
			ps.add(key+".name", "provider name %q is already used by %s", p.Name, prev)
		}
		names[p.Name] = key
		if !idPattern.MatchString(p.Tenant) {
			ps.add(key+".tenant", "must be a tenant id (as `idvault tenant list` prints it), got %q", p.Tenant)
		}
		validateIssuer(ps, key+".issuer", p.Issuer, prod)
		if p.ClientID == "" {
			ps.add(key+".clientId", "must not be empty")
		}
		ps.secretRef(key+".clientSecret", string(p.ClientSecret), prod)
		if want := c.API.PublicURL + OIDCCallbackPath(p.Name); p.RedirectURL != want {
			ps.add(key+".redirectUrl", "must be %q (api.publicURL and this provider's callback route), got %q", want, p.RedirectURL)
		} else if !strings.HasPrefix(p.RedirectURL, "https://") {
			ps.add(key+".redirectUrl", "must use https (set api.publicURL to an https URL), got %q", p.RedirectURL)
		}
		for j, s := range p.Scopes {
			if s == "" || strings.ContainsAny(s, " \t\n\"\\") {
				ps.add(fmt.Sprintf("%s.scopes[%d]", key, j), "must be a scope name without spaces or quotes, got %q", s)
			}
		}
		validateMappings(ps, key+".claimMappings", p.ClaimMappings)
		for j, d := range p.AllowedDomains {
			if !domainPattern.MatchString(d) {
				ps.add(fmt.Sprintf("%s.allowedDomains[%d]", key, j), "must be a lower-case domain name such as example.com, got %q", d)
			}
		}
	}
}

func validateIssuer(ps *problems, key, issuer string, prod bool) {
	u, err := url.Parse(issuer)
	if err != nil || u.Host == "" || u.RawQuery != "" || u.Fragment != "" || u.User != nil || strings.HasSuffix(issuer, "?") {
		ps.add(key, "must be an absolute https URL without user info, query or fragment, got %q", issuer)
		return
	}
	switch {
	case u.Scheme == "https":
	case u.Scheme == "http" && !prod && isLoopback(u.Hostname()):
	case u.Scheme == "http" && !prod:
		ps.add(key, "must use https; plain http is allowed only on a loopback host in dev mode, got %q", issuer)
	default:
		ps.add(key, "must use https in production mode, got %q", issuer)
	}
}

func isLoopback(host string) bool {
	if host == "localhost" {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

func validateMappings(ps *problems, key string, m ClaimMappings) {
	if len(m.Roles) == 0 {
		ps.add(key+".roles", "must map at least one claim value to a role: a user with no mapped role cannot sign in")
	} else if m.RolesClaim == "" {
		ps.add(key+".rolesClaim", "must name the claim whose values claimMappings.roles maps")
	}
	if len(m.Groups) > 0 && m.GroupsClaim == "" {
		ps.add(key+".groupsClaim", "must name the claim whose values claimMappings.groups maps")
	}
	for _, v := range slices.Sorted(maps.Keys(m.Roles)) {
		role := m.Roles[v]
		k := fmt.Sprintf("%s.roles[%q]", key, v)
		_, builtin := authz.RolePermissions(role)
		switch {
		case v == "":
			ps.add(k, "the claim value must not be empty")
		case role == authz.RoleDevice:
			ps.add(k, "role %q belongs to device tokens; a user cannot hold it", role)
		case builtin:
		// A custom role's name is checked as PutRole checks it; the
		// permission only fills the argument.
		case authz.ValidateRole(role, []string{string(authz.SessionRead)}) != nil:
			ps.add(k, "must be admin, verifier, auditor, integration or a custom role's name (1-64 of a-z, 0-9, '-', '_', starting with a letter), got %q", role)
		}
	}
	for _, v := range slices.Sorted(maps.Keys(m.Groups)) {
		k := fmt.Sprintf("%s.groups[%q]", key, v)
		if v == "" {
			ps.add(k, "the claim value must not be empty")
		} else if !idPattern.MatchString(m.Groups[v]) {
			ps.add(k, "must be a group id of the tenant, got %q", m.Groups[v])
		}
	}
}
