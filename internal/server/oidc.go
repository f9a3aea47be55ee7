package server

import (
	"fmt"

	"github.com/idvault/idvault/internal/config"
	"github.com/idvault/idvault/internal/identity"
)

// configureOIDC gives the identity service the OIDC providers of c,
// resolving their client secrets. Providers' discovery documents are
// fetched at their first sign-in, so an unreachable provider does not stop
// the start.
func configureOIDC(svc *identity.Service, c config.OIDC) error {
	providers := make([]identity.OIDCProvider, 0, len(c.Providers))
	for i, p := range c.Providers {
		sec, err := p.ClientSecret.Resolve()
		if err != nil {
			return fmt.Errorf("auth.oidc.providers[%d].clientSecret: %w", i, err)
		}
		m := p.ClaimMappings
		providers = append(providers, identity.OIDCProvider{
			Name: p.Name, Tenant: p.Tenant, Issuer: p.Issuer, ClientID: p.ClientID, ClientSecret: sec,
			RedirectURL: p.RedirectURL, Scopes: p.Scopes, RolesClaim: m.RolesClaim, GroupsClaim: m.GroupsClaim,
			Roles: m.Roles, Groups: m.Groups, AllowedDomains: p.AllowedDomains,
		})
	}
	if err := svc.ConfigureOIDC(providers, nil); err != nil {
		return fmt.Errorf("auth.oidc: %w", err)
	}
	return nil
}
