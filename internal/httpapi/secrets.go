package httpapi

import (
	"errors"
	"github.com/idvault/idvault/internal/webhook"
	"net/http"
	"strings"
	"unicode/utf8"

	"github.com/idvault/idvault/internal/audit"
	"github.com/idvault/idvault/internal/keyring"
	"github.com/idvault/idvault/internal/store"
)

// Admin-entered secrets are write-only: PUT stores a value, GET lists names
// and creation times, DELETE removes one. No route ever returns a value.

// Names under webhook.SecretNamePrefix are the platform's own webhook signing
// secrets: the admin API neither lists, overwrites nor deletes them.

func (a *API) listSecrets(w http.ResponseWriter, r *http.Request) error {
	list, err := a.d.Keys.Secrets(r.Context(), principalOf(r.Context()).Tenant)
	if err != nil {
		return err
	}
	items := list[:0:0]
	for _, s := range list {
		if !strings.HasPrefix(s.Name, webhook.SecretNamePrefix) {
			items = append(items, s)
		}
	}
	return writeJSON(w, http.StatusOK, map[string]any{"items": items})
}

// reservedSecret answers a request naming a platform-reserved secret.
func reservedSecret(name string) error {
	if strings.HasPrefix(name, webhook.SecretNamePrefix) {
		return badRequest("The secret name is reserved.", FieldError{"name", "names starting with " + webhook.SecretNamePrefix + " are the platform's webhook signing secrets"})
	}
	return nil
}

func secretNameProblem() *Problem {
	return badRequest("The secret name is invalid.", FieldError{"name", "1 to 64 of a-z, 0-9, _, . and -, starting with a letter or digit"})
}

func (a *API) putSecret(w http.ResponseWriter, r *http.Request) error {
	var req struct {
		Value *string `json:"value"`
	}
	if err := decodeJSON(w, r, a.d.Limits.MaxJSONBytes, &req); err != nil {
		return err
	}
	if req.Value == nil || *req.Value == "" || len(*req.Value) > keyring.MaxSecretBytes || !utf8.ValidString(*req.Value) {
		return badRequest("The secret is invalid.", FieldError{"value", "a UTF-8 string of 1 to 4096 bytes"})
	}
	name := r.PathValue("name")
	if err := reservedSecret(name); err != nil {
		return err
	}
	err := a.d.Keys.PutSecret(r.Context(), principalOf(r.Context()).Tenant, name, []byte(*req.Value))
	if errors.Is(err, keyring.ErrSecretName) {
		return secretNameProblem()
	}
	if err != nil {
		return err
	}
	if err := a.emitErr(r, audit.Event{Action: "secret.write", Outcome: audit.Success, Resource: audit.Resource{Type: "secret", ID: name}}); err != nil {
		return err
	}
	w.WriteHeader(http.StatusNoContent)
	return nil
}

func (a *API) deleteSecret(w http.ResponseWriter, r *http.Request) error {
	if err := drainEmpty(w, r); err != nil {
		return err
	}
	name := r.PathValue("name")
	if err := reservedSecret(name); err != nil {
		return err
	}
	err := a.d.Keys.DeleteSecret(r.Context(), principalOf(r.Context()).Tenant, name)
	switch {
	case errors.Is(err, keyring.ErrSecretName):
		return secretNameProblem()
	case errors.Is(err, store.ErrNotFound):
		return notFound()
	case err != nil:
		return err
	}
	if err := a.emitErr(r, audit.Event{Action: "secret.delete", Outcome: audit.Success, Resource: audit.Resource{Type: "secret", ID: name}}); err != nil {
		return err
	}
	w.WriteHeader(http.StatusNoContent)
	return nil
}
