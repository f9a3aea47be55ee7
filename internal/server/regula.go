package server

import (
	"fmt"

	"github.com/idvault/idvault/internal/config"
	"github.com/idvault/idvault/internal/httpapi"
	"github.com/idvault/idvault/internal/regula/httpx"
)

// gateway builds the API's /drapi and /faceapi gateway from regula.*: a
// client per configured service, nil for one that is not configured, and
// the device tokens' call quota per session. It reads the services'
// certificate files.
func (s *Server) gateway() (httpapi.Gateway, error) {
	upstream := func(key, service string, c config.RegulaService) (*httpapi.Upstream, error) {
		if !c.Configured() {
			return nil, nil
		}
		client, err := httpx.New(c.Client(), httpx.Options{Service: service, Logger: s.Log})
		if err != nil {
			return nil, fmt.Errorf("%s: %w", key, err)
		}
		return &httpapi.Upstream{Client: client, MaxRequestBytes: c.MaxRequestBytes}, nil
	}
	dr, err := upstream("regula.docReader", "docreader", s.Config.Regula.DocReader)
	if err != nil {
		return httpapi.Gateway{}, err
	}
	fa, err := upstream("regula.faceAPI", "faceapi", s.Config.Regula.FaceAPI.Service())
	if err != nil {
		return httpapi.Gateway{}, err
	}
	return httpapi.Gateway{DocReader: dr, FaceAPI: fa, MaxCallsPerSession: s.Config.Regula.Gateway.MaxCallsPerSession}, nil
}
