// Command idvault runs the idvault identity-verification platform. See
// `idvault --help`.
package main

import (
	"context"
	"os"

	"github.com/idvault/idvault/internal/cli"
)

func main() {
	os.Exit(cli.Run(context.Background(), os.Args[1:], os.Stdout, os.Stderr, os.Environ()))
}
