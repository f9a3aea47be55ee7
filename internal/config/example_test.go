package config_test

import (
	"fmt"
	"os"
	"path/filepath"

	"github.com/idvault/idvault/internal/config"
)

func ExampleLoad() {
	dir, err := os.MkdirTemp("", "idvault-config")
	if err != nil {
		fmt.Println(err)
		return
	}
	defer os.RemoveAll(dir)
	path := filepath.Join(dir, "idvault.yaml")
	yaml := "dataDir: /var/lib/idvault\nqueue:\n  maxAttempts: 3\n"
	if err := os.WriteFile(path, []byte(yaml), 0o600); err != nil {
		fmt.Println(err)
		return
	}

	c, err := config.Load(path, []string{
		"IDVAULT_API__LISTEN=0.0.0.0:9443",   // overrides the file and the default
		"IDVAULT_TEST_REQUIRE_INTEGRATION=1", // not a key: ignored
	})
	if err != nil {
		fmt.Println(err)
		return
	}
	fmt.Println(c.API.Listen, c.API.PublicURL)
	fmt.Println(c.Queue.MaxAttempts, c.Store.SQLite.Path)

	_, err = config.Load(path, []string{"IDVAULT_MODE=production"})
	fmt.Println(err)
	// Output:
	// 0.0.0.0:9443 https://localhost:9443
	// 3 /var/lib/idvault/idvault.db
	// api.tls.certFile: is required in production mode (dev mode generates a self-signed certificate)
	// api.tls.keyFile: is required in production mode
	// crypto.rootKey: a root key is required in production mode: set crypto.rootKey (a reference such as env:IDVAULT_ROOT_KEY or file:/run/secrets/root.key), crypto.rootKeys or crypto.kms
	// audit.signingKey: a checkpoint signing key is required in production mode: make one with idvault audit keygen and reference it (env:NAME or file:/path)
}
