package server

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"

	"golang.org/x/mod/sumdb/note"

	"github.com/idvault/idvault/internal/auditlog"
	"github.com/idvault/idvault/internal/config"
	"github.com/idvault/idvault/internal/secret"
)

// DevAuditKeyPath is where dev mode keeps the checkpoint signing key it
// generates: a directory of its own, apart from the root keys.
func DevAuditKeyPath(cfg config.Config) string {
	return filepath.Join(cfg.DevKeyDir(), "audit", "signing.key")
}

// auditSigner returns the checkpoint signer and its public verifier key:
// from audit.signingKey, or in dev mode from the generated key file (made on
// first use when generate is set). created names a file it generated.
func auditSigner(cfg config.Config, generate bool) (signer note.Signer, verifierKey, created string, err error) {
	var skey string
	switch {
	case cfg.Audit.SigningKey != "":
		v, err := cfg.Audit.SigningKey.Resolve()
		if err != nil {
			return nil, "", "", fmt.Errorf("audit.signingKey: %w", err)
		}
		skey = strings.TrimSpace(string(v.Bytes()))
	case cfg.Mode == config.ModeDev:
		path := DevAuditKeyPath(cfg)
		v, rerr := secret.Resolve("file:" + path)
		switch {
		case rerr == nil:
			skey = strings.TrimSpace(string(v.Bytes()))
		case generate && errors.Is(statErr(path), fs.ErrNotExist):
			s, _, err := auditlog.GenerateKey(cfg.Audit.Origin)
			if err != nil {
				return nil, "", "", err
			}
			if err := writeKeyFile(path, []byte(s+"\n")); err != nil {
				return nil, "", "", fmt.Errorf("audit signing key: %w", err)
			}
			skey, created = s, path
		default:
			return nil, "", "", fmt.Errorf("audit signing key %s: %w", path, rerr)
		}
	default:
		return nil, "", "", errors.New("audit.signingKey is required in production mode")
	}
	signer, err = note.NewSigner(skey)
	if err != nil {
		return nil, "", "", errors.New("audit signing key: not a signed-note private key (make one with idvault audit keygen)")
	}
	verifierKey, err = auditlog.VerifierFromSigner(skey)
	if err != nil {
		return nil, "", "", err
	}
	return signer, verifierKey, created, nil
}

func statErr(path string) error {
	_, err := os.Stat(path)
	return err
}

// openAuditLog opens the audit log with its signing key. Without generate,
// a dev data directory that has no key yet leaves AuditLog nil.
func (s *Server) openAuditLog(generate bool) error {
	signer, vkey, created, err := auditSigner(s.Config, generate)
	if err != nil {
		if !generate && s.Config.Mode == config.ModeDev && s.Config.Audit.SigningKey == "" &&
			errors.Is(statErr(DevAuditKeyPath(s.Config)), fs.ErrNotExist) {
			return nil
		}
		return err
	}
	verifier, err := note.NewVerifier(vkey)
	if err != nil {
		return fmt.Errorf("audit verifier key: %w", err)
	}
	a := s.Config.Audit
	s.AuditLog, err = auditlog.New(s.Backend, s.Barrier, signer, auditlog.Options{Origin: a.Origin, Verifier: verifier,
		CheckpointEvery: a.CheckpointEvery, CheckpointInterval: a.CheckpointInterval})
	if err != nil {
		return err
	}
	s.AuditVerifierKey, s.AuditKeyCreated = vkey, created
	return nil
}
