package docreader_test

import (
	"context"
	"errors"
	"fmt"
	"log"
	"os"
	"time"

	"github.com/idvault/idvault/internal/regula/docreader"
	"github.com/idvault/idvault/internal/regula/httpx"
)

// ExampleClient_Process reads a two-page document. It needs a Document
// Reader service, so it is compiled but not run.
func ExampleClient_Process() {
	c, err := docreader.New(httpx.Config{
		URL:      "https://docreader.internal:8443",
		CAFile:   "/etc/idvault/regula-ca.pem",
		CertFile: "/etc/idvault/regula-client.pem",
		KeyFile:  "/etc/idvault/regula-client-key.pem",
		Timeout:  60 * time.Second,
		Retries:  2,
	}, httpx.Options{})
	if err != nil {
		log.Fatal(err)
	}
	defer c.Close()

	front, _ := os.ReadFile("front.jpg")
	back, _ := os.ReadFile("back.jpg")
	r, err := c.Process(context.Background(), [][]byte{front, back}, "FullProcess")
	switch {
	case errors.Is(err, httpx.ErrUnavailable):
		fmt.Println("service down; try later")
	case err != nil:
		log.Fatal(err)
	case !r.Passed():
		fmt.Println("document failed its checks:", r.DocumentType)
	default:
		fmt.Println("document number:", r.Fields["Document number"])
	}
}
