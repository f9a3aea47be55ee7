package secret_test

import (
	"fmt"
	"os"

	"github.com/idvault/idvault/internal/secret"
)

func ExampleResolve() {
	os.Setenv("EXAMPLE_API_TOKEN", "s3cr3t")
	defer os.Unsetenv("EXAMPLE_API_TOKEN")

	v, err := secret.Resolve("env:EXAMPLE_API_TOKEN")
	if err != nil {
		fmt.Println(err)
		return
	}
	fmt.Println(v, len(v.Bytes()))
	fmt.Println(secret.Ref("env:EXAMPLE_API_TOKEN"), secret.Ref("a-literal-password"))
	_, err = secret.Resolve("vault:kv/idvault")
	fmt.Println(err)
	// Output:
	// REDACTED 6
	// env:EXAMPLE_API_TOKEN REDACTED
	// secret: scheme "vault" is not supported by this build
}
