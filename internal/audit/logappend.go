package audit

import (
	"context"

	"github.com/idvault/idvault/internal/auditlog"
)

// LogAppender returns the Appender that appends events to the
// tamper-evident log, with their filter fields (action, outcome, actor,
// resource). A field longer than auditlog.MaxIndexValueLen is left out of
// the filters; the event itself keeps it.
func LogAppender(log *auditlog.Log) Appender {
	return func(ctx context.Context, evs []Opened) error {
		entries := make([]auditlog.Entry, len(evs))
		for i, o := range evs {
			ev := o.Event
			index := map[string]string{}
			for name, v := range map[string]string{
				auditlog.IndexAction: ev.Action, auditlog.IndexOutcome: ev.Outcome,
				auditlog.IndexActorType: ev.Actor.Type, auditlog.IndexActorID: ev.Actor.ID,
				auditlog.IndexResourceType: ev.Resource.Type, auditlog.IndexResourceID: ev.Resource.ID,
			} {
				if v != "" && len(v) <= auditlog.MaxIndexValueLen {
					index[name] = v
				}
			}
			entries[i] = auditlog.Entry{Tenant: ev.Tenant, ID: ev.ID, Time: ev.Time, Data: o.Data, Index: index}
		}
		_, err := log.Append(ctx, entries)
		return err
	}
}
