package server

import (
	"log/slog"
	"path/filepath"
	"strings"
	"testing"

	"github.com/idvault/idvault/internal/config"
	"github.com/idvault/idvault/internal/regula/regulatest"
)

// TestGatewayWiring: regula.* becomes the API's gateway: nil for a service
// without a url, a client with the configured request bound otherwise, and
// a start-up error naming the key for certificate files that do not load.
func TestGatewayWiring(t *testing.T) {
	dr := regulatest.NewDocReader(t, regulatest.Options{TLS: true})
	s := &Server{Config: config.Default(), Log: slog.New(slog.DiscardHandler)}
	gw, err := s.gateway()
	if err != nil || gw.DocReader != nil || gw.FaceAPI != nil {
		t.Fatalf("gateway() unconfigured = %+v, %v; want no services, nil", gw, err)
	}

	s.Config.Regula.DocReader.URL, s.Config.Regula.DocReader.CAFile = dr.URL(), dr.CAFile()
	s.Config.Regula.DocReader.MaxRequestBytes = 12345
	s.Config.Regula.Gateway.MaxCallsPerSession = 7
	gw, err = s.gateway()
	if err != nil || gw.DocReader == nil || gw.DocReader.MaxRequestBytes != 12345 || gw.FaceAPI != nil || gw.MaxCallsPerSession != 7 {
		t.Fatalf("gateway() docReader = %+v, %v; want the Document Reader only, with its request bound and the call quota", gw, err)
	}
	gw.DocReader.Client.Close()

	s.Config.Regula.FaceAPI.URL = "https://127.0.0.1:1"
	s.Config.Regula.FaceAPI.CAFile = filepath.Join(t.TempDir(), "missing.pem")
	if _, err := s.gateway(); err == nil || !strings.Contains(err.Error(), "regula.faceAPI") {
		t.Errorf("gateway() with a missing CA file = %v, want an error naming regula.faceAPI", err)
	}
}
