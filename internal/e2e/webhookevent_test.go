package e2e

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"time"

	"github.com/idvault/idvault/internal/webhook"
)

// webhookEvent is a webhook delivery's body, as a business's endpoint reads
// it.
type webhookEvent struct {
	ID   string `json:"id"`
	Type string `json:"type"`
	Data struct {
		SessionID string `json:"sessionId"`
		Status    string `json:"status"`
		Decision  string `json:"decision"`
	} `json:"data"`
}

// readEvent reads one delivery and checks it as a business must: the
// signature over its body with secret at at (when it arrived), the body,
// and the event id and type headers against the body. It returns why the
// delivery is refused, "" when it is not.
func readEvent(r *http.Request, secret []byte, at time.Time) (webhookEvent, string) {
	var ev webhookEvent
	body, err := io.ReadAll(r.Body)
	if err != nil {
		return ev, "read body: " + err.Error()
	}
	if err := webhook.Verify(secret, r.Header.Get(webhook.HeaderSignature), body, at, 0); err != nil {
		return ev, "signature: " + err.Error()
	}
	if err := json.Unmarshal(body, &ev); err != nil {
		return ev, "decode body: " + err.Error()
	}
	if id, typ := r.Header.Get(webhook.HeaderEventID), r.Header.Get(webhook.HeaderEventType); ev.ID != id || ev.Type != typ {
		return ev, fmt.Sprintf("headers name event %s %s, body %s %s", id, typ, ev.ID, ev.Type)
	}
	return ev, ""
}
