package tlsconf

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/hex"
	"encoding/pem"
	"errors"
	"fmt"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"
)

// Names of the files EnsureSelfSigned keeps in its directory.
const (
	SelfSignedCertFile = "cert.pem"
	SelfSignedKeyFile  = "key.pem"
)

// selfSignedValidity is how long a generated development certificate lasts.
const selfSignedValidity = 365 * 24 * time.Hour

// defaultHosts are always in a generated development certificate.
var defaultHosts = []string{"localhost", "127.0.0.1", "::1"}

// ErrInvalidHost reports a host name for EnsureSelfSigned that is neither an
// IP address nor a DNS name.
var ErrInvalidHost = errors.New("tlsconf: invalid host name")

// EnsureSelfSigned provides a self-signed certificate for development mode in
// dir (created with mode 0700 if missing). If dir/cert.pem and dir/key.pem
// already form a valid pair whose certificate is valid at now and covers every
// host, it returns their paths with created false. Otherwise it generates a
// new ECDSA P-256 key and a certificate valid for one year from now for hosts
// plus localhost, 127.0.0.1 and ::1, writes the key with mode 0600 and the
// certificate with mode 0644, each by writing a temporary file and renaming
// it, and returns created true. A host is an IP address or a DNS name; any
// other string is an error wrapping ErrInvalidHost.
//
// The certificate authenticates nothing by itself: clients must pin it or
// compare its Fingerprint out of band. It MUST NOT be used in production.
// EnsureSelfSigned checks the files after writing them, but two processes
// calling it on one dir at once may still leave a mismatched pair; NewReloader
// then refuses it, and another call to EnsureSelfSigned repairs it.
func EnsureSelfSigned(dir string, hosts []string, now time.Time) (certFile, keyFile string, created bool, err error) {
	dnsNames, ips, err := splitHosts(append(slices.Clone(defaultHosts), hosts...))
	if err != nil {
		return "", "", false, err
	}
	certFile = filepath.Join(dir, SelfSignedCertFile)
	keyFile = filepath.Join(dir, SelfSignedKeyFile)
	if existingValid(certFile, keyFile, dnsNames, ips, now) {
		return certFile, keyFile, false, nil
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return "", "", false, fmt.Errorf("create certificate directory: %w", err)
	}
	certPEM, keyPEM, err := generateSelfSigned(dnsNames, ips, now)
	if err != nil {
		return "", "", false, err
	}
	defer clear(keyPEM)
	if err := writeFileAtomic(keyFile, keyPEM, 0o600); err != nil {
		return "", "", false, fmt.Errorf("write key file: %w", err)
	}
	if err := writeFileAtomic(certFile, certPEM, 0o644); err != nil {
		return "", "", false, fmt.Errorf("write certificate file: %w", err)
	}
	if err := verifyFiles(certFile, keyFile); err != nil {
		return "", "", false, fmt.Errorf("check written files: %w", err)
	}
	return certFile, keyFile, true, nil
}

// Fingerprint returns the SHA-256 fingerprint of the first certificate in a
// PEM file as upper-case hex bytes joined by colons, the form openssl and
// browsers show. It fails with ErrNoCertificate if the file holds none.
func Fingerprint(certFile string) (string, error) {
	data, err := os.ReadFile(certFile)
	if err != nil {
		return "", fmt.Errorf("read certificate file: %w", err)
	}
	for {
		var block *pem.Block
		block, data = pem.Decode(data)
		if block == nil {
			return "", fmt.Errorf("%s: %w", certFile, ErrNoCertificate)
		}
		if block.Type == "CERTIFICATE" {
			if _, err := x509.ParseCertificate(block.Bytes); err != nil {
				return "", fmt.Errorf("%s: %w: %w", certFile, ErrNoCertificate, err)
			}
			return fingerprint(block.Bytes), nil
		}
	}
}

// fingerprint formats the SHA-256 of a DER certificate.
func fingerprint(der []byte) string {
	sum := sha256.Sum256(der)
	h := strings.ToUpper(hex.EncodeToString(sum[:]))
	var b strings.Builder
	b.Grow(len(h) + len(h)/2)
	for i := 0; i < len(h); i += 2 {
		if i > 0 {
			b.WriteByte(':')
		}
		b.WriteString(h[i : i+2])
	}
	return b.String()
}

// splitHosts sorts hosts into DNS names and IP addresses, dropping empty
// strings and duplicates.
func splitHosts(hosts []string) (dnsNames []string, ips []net.IP, err error) {
	seen := make(map[string]bool, len(hosts))
	for _, h := range hosts {
		h = strings.TrimSpace(h)
		if h == "" {
			continue
		}
		if ip := net.ParseIP(h); ip != nil {
			if key := ip.String(); !seen[key] {
				seen[key] = true
				ips = append(ips, ip)
			}
			continue
		}
		h = strings.ToLower(strings.TrimSuffix(h, "."))
		if !validDNSName(h) {
			return nil, nil, fmt.Errorf("%w: %q", ErrInvalidHost, h)
		}
		if !seen[h] {
			seen[h] = true
			dnsNames = append(dnsNames, h)
		}
	}
	return dnsNames, ips, nil
}

// validDNSName reports whether name is a DNS host name: dot-separated labels
// of 1 to 63 letters, digits and inner hyphens, 253 bytes at most.
func validDNSName(name string) bool {
	if name == "" || len(name) > 253 {
		return false
	}
	for label := range strings.SplitSeq(name, ".") {
		if label == "" || len(label) > 63 || label[0] == '-' || label[len(label)-1] == '-' {
			return false
		}
		for i := 0; i < len(label); i++ {
			c := label[i]
			if !(c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '-') {
				return false
			}
		}
	}
	return true
}

// existingValid reports whether the files form a valid pair whose leaf is
// valid at now and covers every name and address.
func existingValid(certFile, keyFile string, dnsNames []string, ips []net.IP, now time.Time) bool {
	certPEM, err := os.ReadFile(certFile)
	if err != nil {
		return false
	}
	keyPEM, err := os.ReadFile(keyFile)
	if err != nil {
		return false
	}
	defer clear(keyPEM)
	cert, err := parsePair(certPEM, keyPEM)
	if err != nil {
		return false
	}
	leaf := cert.Leaf
	if now.Before(leaf.NotBefore) || now.After(leaf.NotAfter) {
		return false
	}
	for _, name := range dnsNames {
		if leaf.VerifyHostname(name) != nil {
			return false
		}
	}
	for _, ip := range ips {
		if leaf.VerifyHostname(ip.String()) != nil {
			return false
		}
	}
	return true
}

// generateSelfSigned returns a PEM certificate and PKCS #8 PEM key.
func generateSelfSigned(dnsNames []string, ips []net.IP, now time.Time) (certPEM, keyPEM []byte, err error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, nil, fmt.Errorf("generate key: %w", err)
	}
	serial, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 128))
	if err != nil {
		return nil, nil, fmt.Errorf("generate serial number: %w", err)
	}
	tmpl := &x509.Certificate{
		SerialNumber:          serial,
		Subject:               pkix.Name{Organization: []string{"idvault"}, CommonName: "idvault development"},
		NotBefore:             now.Add(-time.Hour),
		NotAfter:              now.Add(selfSignedValidity),
		KeyUsage:              x509.KeyUsageDigitalSignature,
		ExtKeyUsage:           []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		BasicConstraintsValid: true,
		DNSNames:              dnsNames,
		IPAddresses:           ips,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		return nil, nil, fmt.Errorf("create certificate: %w", err)
	}
	keyDER, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		return nil, nil, fmt.Errorf("marshal key: %w", err)
	}
	defer clear(keyDER)
	certPEM = pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})
	keyPEM = pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: keyDER})
	return certPEM, keyPEM, nil
}

// verifyFiles checks that the files on disk form a valid pair.
func verifyFiles(certFile, keyFile string) error {
	certPEM, err := os.ReadFile(certFile)
	if err != nil {
		return err
	}
	keyPEM, err := os.ReadFile(keyFile)
	if err != nil {
		return err
	}
	defer clear(keyPEM)
	_, err = parsePair(certPEM, keyPEM)
	return err
}

// writeFileAtomic writes data to a temporary file in the same directory with
// the given mode, syncs it and renames it over name, so a reader sees the old
// contents or the new ones, never a part. Syncing the directory afterwards is
// best effort (it is not possible on every platform).
func writeFileAtomic(name string, data []byte, mode os.FileMode) (err error) {
	dir := filepath.Dir(name)
	f, err := os.CreateTemp(dir, "."+filepath.Base(name)+".tmp-*")
	if err != nil {
		return err
	}
	tmp := f.Name()
	defer func() {
		if err != nil {
			_ = f.Close()
			_ = os.Remove(tmp)
		}
	}()
	if err := f.Chmod(mode); err != nil {
		return err
	}
	if _, err := f.Write(data); err != nil {
		return err
	}
	if err := f.Sync(); err != nil {
		return err
	}
	if err := f.Close(); err != nil {
		return err
	}
	if err := os.Rename(tmp, name); err != nil {
		return err
	}
	d, err := os.Open(dir)
	if err != nil {
		return nil
	}
	defer d.Close()
	_ = d.Sync()
	return nil
}
