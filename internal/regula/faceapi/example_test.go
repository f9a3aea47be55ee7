package faceapi_test

import (
	"context"
	"errors"
	"fmt"
	"log"

	"github.com/idvault/idvault/internal/regula/faceapi"
	"github.com/idvault/idvault/internal/regula/httpx"
)

// ExampleClient_Match compares a document portrait with a selfie against a
// threshold. It needs a Face API service, so it is compiled but not run.
func ExampleClient_Match() {
	c, err := faceapi.New(httpx.Config{URL: "https://faceapi.internal:41101", Retries: 2}, httpx.Options{})
	if err != nil {
		log.Fatal(err)
	}
	defer c.Close()

	var portrait, selfie []byte // from docreader.Result.Portrait and the capture
	const threshold = 0.75
	similarity, err := c.Match(context.Background(), portrait, selfie)
	switch {
	case errors.Is(err, faceapi.ErrNoFace):
		fmt.Println("no face: ask for a new selfie")
	case err != nil:
		log.Fatal(err)
	default:
		fmt.Println("same person:", similarity >= threshold)
	}
}
