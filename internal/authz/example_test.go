package authz_test

import (
	"fmt"

	"github.com/idvault/idvault/internal/authz"
)

// Example shows the two checks of a request: the route gate before anything
// is loaded, then the decision on the record.
func Example() {
	key := authz.Subject{Tenant: "t-1", ID: "k-1", Roles: []string{authz.RoleIntegration}}
	verifier := authz.Subject{Tenant: "t-1", ID: "u-1", Roles: []string{authz.RoleVerifier}, Groups: []string{"g-kyc"}}
	admin := authz.Subject{Tenant: "t-1", ID: "u-2", Roles: []string{authz.RoleAdmin}}
	session := &authz.Record{Tenant: "t-1", ID: "s-1", Owner: "k-1",
		Restricted: []authz.Grant{{Group: "g-kyc", Mode: authz.ReadWrite}}}

	fmt.Println(authz.Allowed(key, authz.SessionDelete)) // the route gate: 403 at once
	fmt.Println(authz.Decide(key, authz.SessionRead, session).Outcome)
	fmt.Println(authz.Decide(verifier, authz.SessionWrite, session).Outcome)
	fmt.Println(authz.Decide(admin, authz.SessionRead, session).Outcome)
	fmt.Println(authz.Decide(admin, authz.SessionRestrict, session).Outcome)
	// Output:
	// false
	// not found
	// allow
	// not found
	// allow
}

// ExampleCanGrant shows an integration key trying to issue a key stronger
// than itself.
func ExampleCanGrant() {
	key := authz.Subject{Tenant: "t-1", ID: "k-1", Roles: []string{authz.RoleIntegration}}
	fmt.Println(authz.CanGrant(key, []authz.Permission{authz.SessionRead, authz.SessionReadAll}))
	// Output:
	// authz: cannot grant a permission not held: session:read_all
}
