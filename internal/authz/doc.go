// Package authz decides whether a subject may exercise a permission on a
// record. It is the one place where a request is authorized: Decide is a
// pure function of (subject, permission, record), deny by default, with no
// I/O and no state. docs/access-control.md is the reference for operators.
//
// # Model
//
// Three layers, all decided by Decide:
//
//  1. Tenant. A subject belongs to one tenant; a record of another tenant,
//     or any record for a subject without a tenant, is NotFound.
//  2. Role. Permissions are "resource:operation". A subject holds the
//     permissions of its built-in roles (admin, verifier, auditor,
//     integration, device) and of its custom roles (Subject.Custom). Where
//     records have an owner (the creating principal), "resource:op" reaches
//     the subject's own records and "resource:op_all" every record of the
//     tenant; "_all" implies the own form. Another principal's record
//     reached with only the own form is NotFound, so its existence is not
//     revealed. A device token holds its permissions only on its bound
//     session.
//  3. Record. A session, profile, profile group or workflow may be
//     restricted to groups, each ReadOnly or ReadWrite. To everyone outside
//     those groups — admins included — the record is NotFound, in lists and
//     counts too; ReadOnly members only read. "resource:restrict" changes
//     the restriction and is decided without membership or ownership, so an
//     admin can manage a restriction without seeing the content.
//
// Deny (403) depends only on the subject and the permission (and, for a
// member, on its mode), never on whether a record it cannot see exists;
// NotFound (404) is answered exactly as for an unknown id. Every route
// declares one permission in the route table and is gated by Allowed before
// the handler loads anything; the handler then calls Decide on the record
// (for a file, its session), or Visible for each record of a list.
//
// No subject grants what it does not hold (CanGrant); custom roles are
// checked by ValidateRole, restrictions by ValidateRestriction.
//
// # Threat model
//
// An authenticated caller — a leaked integration key, a device token, a
// verifier, an auditor, an admin of one tenant — tries to read or change
// what its permissions do not cover, to learn whether a record exists, or to
// mint itself a stronger credential. Decide stops the first two (unknown
// permissions and role names grant nothing; case and spaces matter; no
// wildcard exists), CanGrant the third. Out of scope: authentication
// (package identity), a handler that acts without calling Decide or returns
// content on a restrict Allow (the route table test and handler tests catch
// those), and a tenant's admin, who can add itself to any group.
//
// # Catalogue
//
// Operations are read, write (create and change) and delete, plus restrict
// where records can be restricted:
//
//	resource     operations                  _all forms  restrict  what
//	session      read write delete           yes         yes       verification sessions
//	file         read write delete           yes         no        files of sessions (the session's owner and restriction)
//	profile      read write delete           yes         yes       profiles and profile groups
//	workflow     read write delete           yes         yes       workflow definitions
//	user         read write delete           no          no        users of the tenant
//	group        read write delete           no          no        groups and their members
//	role         read write delete           no          no        custom roles
//	apikey       read write delete           yes         no        API keys (own: issued by the subject)
//	devicetoken  read write delete           yes         no        device tokens (own: issued by the subject)
//	webhook      read write delete           no          no        webhooks
//	audit        read                        no          no        audit events (append-only: no write, no delete)
//	settings     read write delete           no          no        settings and admin-entered secrets (names only)
//	key          read write delete           no          no        key metadata, rotation, destruction
//
// Built-in roles:
//
//	admin        every permission
//	verifier     session:read_all session:write_all file:read_all profile:read_all
//	auditor      audit:read settings:read
//	integration  session:read session:write file:read file:write devicetoken:write
//	device       session:write file:write, on its bound session only
package authz
