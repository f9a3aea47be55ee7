package httpapi

import (
	"fmt"
	"net/http"
	"unicode"

	"github.com/idvault/idvault/internal/audit"
)

// PurposeHeader carries the stated purpose of a read of personal data or
// files; it is recorded in the read's audit event.
const PurposeHeader = "X-Access-Purpose"

// maxPurpose is the longest stated purpose, in bytes.
const maxPurpose = 200

// access records a read of personal data or files before anything is
// answered (fail-closed: no event, no data). The stated purpose, if any,
// goes into the event; when the tenant's policy requires one, a read without
// it is refused with 400 purpose-required, and the refusal is recorded.
func (a *API) access(r *http.Request, ev audit.Event) error {
	purpose := r.Header.Get(PurposeHeader)
	if len(purpose) > maxPurpose {
		return badRequest("The stated purpose is invalid.", FieldError{PurposeHeader, fmt.Sprintf("at most %d bytes", maxPurpose)})
	}
	for _, c := range purpose {
		if !unicode.IsPrint(c) {
			return badRequest("The stated purpose is invalid.", FieldError{PurposeHeader, "printable characters only"})
		}
	}
	if purpose == "" {
		pol, err := a.d.Identity.Policy(r.Context(), principalOf(r.Context()).Tenant)
		if err != nil {
			return err
		}
		if pol.RequirePurpose {
			a.emit(r, audit.Event{Action: ev.Action, Outcome: audit.Denied, Reason: "no purpose stated",
				Resource: ev.Resource, Details: ev.Details})
			return problem(http.StatusBadRequest, "purpose-required", "Purpose of access required",
				"The tenant requires every read of personal data to state its purpose in the "+PurposeHeader+" header.")
		}
	}
	ev.Purpose = purpose
	if err := a.emitErr(r, ev); err != nil {
		return fmt.Errorf("audit %s: %w", ev.Action, err)
	}
	return nil
}
