// Package defsync loads workflow definitions kept as files, so that a
// deployment can review its definitions in git and deploy them like
// configuration. A [Syncer] reads a directory laid out as
//
//	<dir>/<tenant id>/<workflow id>.yaml   (or .yml, .json)
//
// and, for each file, stores its definition as a new version through
// [engine.Definitions.Create], the path the API's POST /api/v1/workflows
// takes, so the version becomes the workflow's active one. Files are
// reconciled with the stored versions, never the other way round:
//
//   - a file whose version is stored with the same content (the same
//     [definition.Definition.Hash]) changes nothing;
//   - a file whose version is the next one of its id is stored, audited as
//     workflow.create with actor system/scheduler and the file in details;
//   - a file whose version is stored with other content, or is neither
//     stored nor the next one, is refused: stored versions never change;
//   - an invalid file is refused with its problems (field, line, column);
//   - a deleted file changes nothing (deactivation is an API call).
//
// Every refusal is in the [Report], logged and audited as workflow.sync
// once for as long as the file stays the same and refused; a failing file
// never stops the other files or tenants. A directory that names no tenant
// is reported and skipped; tenants are never created.
//
// Threat model: a definition decides who is approved, so the directory is
// treated like a configuration file holding keys. Whoever can write it can
// change every tenant's workflows. A Syncer therefore refuses a file when
// the file, or a directory between it and the root directory, is writable
// by group or others (the root directory itself being so stops the whole
// pass), when it is a symbolic link (or lies under one) that resolves
// outside the root directory, when it is not a regular file, and when it is
// larger than [definition.MaxBytes]; files are opened through an [os.Root]
// of the root directory and read with that bound whatever their size
// claims. The parent directories of the root directory, and who owns the
// files, are the operator's to protect. Audit events name files, ids,
// versions and hashes, and count problems; the log adds each problem's
// field, position and message (which may quote the value at fault, cut at
// 160 bytes), never a file's contents.
package defsync
