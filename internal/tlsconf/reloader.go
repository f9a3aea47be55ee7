package tlsconf

import (
	"context"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"log/slog"
	"os"
	"runtime"
	"sync"
	"sync/atomic"
	"time"
)

// Reloader serves a certificate and key pair read from two files and replaces
// it when the files change. Its methods are safe for concurrent use.
type Reloader struct {
	certFile string
	keyFile  string
	logger   *slog.Logger

	cert atomic.Pointer[tls.Certificate]

	mu         sync.Mutex // serialises reads of the files and guards the fields below
	lastSum    pairSum    // contents last tried, installed or not
	readFailed bool       // the last poll could not read the files
}

// pairSum identifies the contents of the two files.
type pairSum struct {
	cert, key [sha256.Size]byte
}

// NewReloader reads the certificate and key files and returns a Reloader that
// serves them. It fails if either file cannot be read or they do not form a
// valid, matching pair (ErrInvalidKeyPair). A nil logger discards messages.
func NewReloader(certFile, keyFile string, logger *slog.Logger) (*Reloader, error) {
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	r := &Reloader{certFile: certFile, keyFile: keyFile, logger: logger}
	if err := r.reload(); err != nil {
		return nil, err
	}
	return r, nil
}

// GetCertificate returns the current certificate, whatever the hello says. It
// has the signature of tls.Config.GetCertificate. The returned value is shared
// and MUST NOT be modified.
func (r *Reloader) GetCertificate(*tls.ClientHelloInfo) (*tls.Certificate, error) {
	return r.cert.Load(), nil
}

// Reload reads both files now and installs them if they form a valid,
// matching pair. Otherwise it keeps the current certificate, logs a warning
// and returns the error (wrapping ErrInvalidKeyPair for a bad pair). It is
// meant for SIGHUP and for tests.
func (r *Reloader) Reload() error {
	r.mu.Lock()
	defer r.mu.Unlock()
	if err := r.reload(); err != nil {
		r.logger.Warn("tls certificate reload failed, keeping current certificate",
			"cert_file", r.certFile, "key_file", r.keyFile, "error", err)
		return err
	}
	return nil
}

// reload reads and installs the files; r.mu must be held or r not yet shared.
func (r *Reloader) reload() error {
	certPEM, keyPEM, err := r.read()
	if err != nil {
		return err
	}
	defer clear(keyPEM)
	r.lastSum = sumPair(certPEM, keyPEM)
	return r.install(certPEM, keyPEM)
}

// Run polls the files every interval until ctx is done and installs a new
// pair when their contents change and form a valid, matching pair. A pair that
// fails is logged once and kept out until the files change again. Run blocks;
// start it in its own goroutine. It panics if interval is not positive.
func (r *Reloader) Run(ctx context.Context, interval time.Duration) {
	t := time.NewTicker(interval)
	defer t.Stop()
	r.run(ctx, t.C)
}

// run polls once for every value received from ticks until ctx is done.
func (r *Reloader) run(ctx context.Context, ticks <-chan time.Time) {
	for {
		select {
		case <-ctx.Done():
			return
		case <-ticks:
			r.poll()
		}
	}
}

// poll installs the files if their contents differ from the last ones tried.
func (r *Reloader) poll() {
	r.mu.Lock()
	defer r.mu.Unlock()
	certPEM, keyPEM, err := r.read()
	if err != nil {
		if !r.readFailed {
			r.logger.Warn("tls certificate poll failed, keeping current certificate", "error", err)
		}
		r.readFailed = true
		return
	}
	defer clear(keyPEM)
	r.readFailed = false
	sum := sumPair(certPEM, keyPEM)
	if sum == r.lastSum {
		return
	}
	r.lastSum = sum
	if err := r.install(certPEM, keyPEM); err != nil {
		r.logger.Warn("tls certificate pair rejected, keeping current certificate",
			"cert_file", r.certFile, "key_file", r.keyFile, "error", err)
	}
}

// read returns the contents of the certificate and key files.
func (r *Reloader) read() (certPEM, keyPEM []byte, err error) {
	certPEM, err = os.ReadFile(r.certFile)
	if err != nil {
		return nil, nil, fmt.Errorf("read certificate file: %w", err)
	}
	keyPEM, err = os.ReadFile(r.keyFile)
	if err != nil {
		return nil, nil, fmt.Errorf("read key file: %w", err)
	}
	return certPEM, keyPEM, nil
}

// install parses the pair and, if it is valid, makes it current and logs it.
// Errors are returned, not logged; they hold no key material.
func (r *Reloader) install(certPEM, keyPEM []byte) error {
	cert, err := parsePair(certPEM, keyPEM)
	if err != nil {
		return err
	}
	r.checkKeyMode()
	r.cert.Store(cert)
	r.logger.Info("tls certificate loaded",
		"cert_file", r.certFile,
		"serial", cert.Leaf.SerialNumber.Text(16),
		"subject", cert.Leaf.Subject.String(),
		"not_after", cert.Leaf.NotAfter,
		"sha256", fingerprint(cert.Leaf.Raw))
	return nil
}

// checkKeyMode warns if the key file is readable by group or others.
func (r *Reloader) checkKeyMode() {
	if runtime.GOOS == "windows" {
		return
	}
	fi, err := os.Stat(r.keyFile)
	if err != nil {
		return
	}
	if mode := fi.Mode().Perm(); mode&0o077 != 0 {
		r.logger.Warn("tls key file is accessible to group or others; use mode 0600",
			"key_file", r.keyFile, "mode", fmt.Sprintf("%04o", mode))
	}
}

// parsePair parses a PEM certificate chain and private key and checks that
// they match.
func parsePair(certPEM, keyPEM []byte) (*tls.Certificate, error) {
	cert, err := tls.X509KeyPair(certPEM, keyPEM)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrInvalidKeyPair, err)
	}
	if cert.Leaf == nil {
		leaf, err := x509.ParseCertificate(cert.Certificate[0])
		if err != nil {
			return nil, fmt.Errorf("%w: %w", ErrInvalidKeyPair, err)
		}
		cert.Leaf = leaf
	}
	return &cert, nil
}

func sumPair(certPEM, keyPEM []byte) pairSum {
	return pairSum{cert: sha256.Sum256(certPEM), key: sha256.Sum256(keyPEM)}
}
