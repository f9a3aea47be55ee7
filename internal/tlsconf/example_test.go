package tlsconf_test

import (
	"context"
	"crypto/tls"
	"fmt"
	"log"
	"log/slog"
	"net/http"
	"os"
	"time"

	"github.com/idvault/idvault/internal/tlsconf"
)

// ExampleServerConfig serves HTTPS with a development certificate that is
// reloaded when its files change.
func ExampleServerConfig() {
	dir, err := os.MkdirTemp("", "idvault-tls")
	if err != nil {
		log.Fatal(err)
	}
	defer os.RemoveAll(dir)

	certFile, keyFile, _, err := tlsconf.EnsureSelfSigned(dir, []string{"idvault.local"}, time.Now())
	if err != nil {
		log.Fatal(err)
	}
	if _, err := tlsconf.Fingerprint(certFile); err != nil {
		log.Fatal(err)
	}
	logger := slog.New(slog.DiscardHandler)
	reloader, err := tlsconf.NewReloader(certFile, keyFile, logger)
	if err != nil {
		log.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		reloader.Run(ctx, time.Minute)
	}()

	srv := &http.Server{
		Addr:              "127.0.0.1:8443",
		TLSConfig:         tlsconf.ServerConfig(reloader, nil),
		ReadHeaderTimeout: 10 * time.Second,
	}
	// srv.ListenAndServeTLS("", "") would serve here.
	fmt.Println(tls.VersionName(srv.TLSConfig.MinVersion), srv.TLSConfig.NextProtos)

	cancel()
	<-done
	// Output: TLS 1.2 [h2 http/1.1]
}
