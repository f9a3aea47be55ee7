package server

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/idvault/idvault/internal/config"
)

// benchPlatform runs the whole platform (all roles) on a temporary data
// directory and returns the API base URL, an admin API key and an HTTPS
// client that trusts the platform's self-signed certificate.
func benchPlatform(b *testing.B) (base, key string, client *http.Client) {
	b.Helper()
	dir := b.TempDir()
	// Rate limiting is off: the benchmark measures what the platform can
	// serve, from one client address.
	cfg, err := config.Load("", []string{"IDVAULT_DATADIR=" + dir, "IDVAULT_API__LISTEN=127.0.0.1:0", "IDVAULT_API__RATELIMIT__ENABLED=false"})
	if err != nil {
		b.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	log := slog.New(slog.DiscardHandler)
	srv, err := Open(ctx, cfg, log, true)
	if err != nil {
		b.Fatal(err)
	}
	res, err := srv.Init(ctx)
	if err != nil {
		b.Fatal(err)
	}
	addrc := make(chan net.Addr, 1)
	done := make(chan error, 1)
	go func() { done <- srv.Run(ctx, benchRoles(), func(a net.Addr, _ string) { addrc <- a }) }()
	var addr net.Addr
	select {
	case addr = <-addrc:
	case err := <-done:
		b.Fatal(err)
	}
	b.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			b.Error(err)
		}
		if err := srv.Close(); err != nil {
			b.Error(err)
		}
	})
	pem, err := os.ReadFile(filepath.Join(cfg.DevTLSDir(), "cert.pem"))
	if err != nil {
		b.Fatal(err)
	}
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(pem)
	tr := &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool}, MaxIdleConnsPerHost: 64, ForceAttemptHTTP2: true}
	b.Cleanup(tr.CloseIdleConnections)
	return "https://" + addr.String() + "/api/v1", res.APIKey, &http.Client{Transport: tr}
}

func call(client *http.Client, method, url, key, ctype string, body []byte, want int) ([]byte, error) {
	req, err := http.NewRequest(method, url, bytes.NewReader(body))
	if err != nil {
		return nil, err
	}
	req.Header.Set("Authorization", "ApiKey "+key)
	if ctype != "" {
		req.Header.Set("Content-Type", ctype)
	}
	resp, err := client.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	out, err := io.ReadAll(resp.Body)
	if err != nil {
		return nil, err
	}
	if resp.StatusCode != want {
		return nil, fmt.Errorf("%s %s = %d, want %d: %s", method, url, resp.StatusCode, want, out)
	}
	return out, nil
}

func createSession(client *http.Client, base, key string) (string, error) {
	out, err := call(client, "POST", base+"/sessions", key, "application/json", []byte(`{"metadata":{"ref":"bench"}}`), http.StatusCreated)
	if err != nil {
		return "", err
	}
	var s struct{ ID string }
	if err := json.Unmarshal(out, &s); err != nil {
		return "", err
	}
	return s.ID, nil
}

// clients is how many concurrent clients per CPU the HTTPS benchmarks run.
const clients = 16

// BenchmarkHTTPS measures the API over HTTPS on loopback with every role
// running: session create and get per second, and file upload throughput on
// a ladder of sizes (PDF bodies, so the size is exact).
func BenchmarkHTTPS(b *testing.B) {
	base, key, client := benchPlatform(b)
	b.Run("SessionCreate", func(b *testing.B) {
		b.SetParallelism(clients)
		b.RunParallel(func(pb *testing.PB) {
			for pb.Next() {
				if _, err := createSession(client, base, key); err != nil {
					b.Error(err)
					return
				}
			}
		})
		b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "sessions/s")
	})
	id, err := createSession(client, base, key)
	if err != nil {
		b.Fatal(err)
	}
	b.Run("SessionGet", func(b *testing.B) {
		b.SetParallelism(clients)
		b.RunParallel(func(pb *testing.PB) {
			for pb.Next() {
				if _, err := call(client, "GET", base+"/sessions/"+id, key, "", nil, http.StatusOK); err != nil {
					b.Error(err)
					return
				}
			}
		})
		b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "gets/s")
	})
	for _, size := range []int{64 << 10, 1 << 20, 16 << 20} {
		pdf := make([]byte, size)
		copy(pdf, "%PDF-1.7\n")
		copy(pdf[size-6:], "%%EOF\n")
		b.Run(fmt.Sprintf("Upload/%dKiB", size>>10), func(b *testing.B) {
			b.SetBytes(int64(size))
			sid := ""
			for i := 0; b.Loop(); i++ {
				if i%30 == 0 {
					if sid, err = createSession(client, base, key); err != nil {
						b.Fatal(err)
					}
				}
				if _, err := call(client, "POST", base+"/sessions/"+sid+"/files?kind=attachment", key, "application/pdf", pdf, http.StatusCreated); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// benchRoles is every role, or those IDVAULT_BENCH_ROLES lists
// (comma-separated), to measure one part without the others competing.
func benchRoles() []config.Role {
	v := os.Getenv("IDVAULT_BENCH_ROLES")
	if v == "" {
		return config.AllRoles()
	}
	var roles []config.Role
	for _, r := range strings.Split(v, ",") {
		roles = append(roles, config.Role(r))
	}
	return roles
}
