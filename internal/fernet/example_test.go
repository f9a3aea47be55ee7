package fernet_test

import (
	"errors"
	"fmt"
	"time"

	"github.com/idvault/idvault/internal/fernet"
)

func Example() {
	// In production the key comes from a secret reference, never a literal.
	key, err := fernet.ParseKey("cw_0x689RpI-jtRR7oE8h_eQsKImvJapLeSbXpwF4e4=")
	if err != nil {
		panic(err)
	}
	made := time.Date(2025, 3, 14, 15, 9, 26, 0, time.UTC)
	token, err := fernet.Encrypt(key, []byte("Jane Doe"), made)
	if err != nil {
		panic(err)
	}

	plain, err := fernet.Decrypt(key, token, time.Hour, made.Add(time.Minute))
	fmt.Println(string(plain), err)

	_, err = fernet.Decrypt(key, token, time.Hour, made.Add(2*time.Hour))
	fmt.Println(errors.Is(err, fernet.ErrExpired), errors.Is(err, fernet.ErrInvalidToken))

	fmt.Println(key)
	// Output:
	// Jane Doe <nil>
	// true true
	// REDACTED
}

func ExampleKeys_Rotate() {
	oldKey, _ := fernet.GenerateKey()
	newKey, _ := fernet.GenerateKey()
	made := time.Date(2025, 3, 14, 15, 9, 26, 0, time.UTC)
	token, _ := fernet.Encrypt(oldKey, []byte("Jane Doe"), made)

	// The new key goes first: it encrypts; the old one still decrypts.
	keys := fernet.Keys{newKey, oldKey}
	rotated, err := keys.Rotate(token)
	if err != nil {
		panic(err)
	}
	plain, err := fernet.Decrypt(newKey, rotated, 0, time.Time{})
	fmt.Println(string(plain), err)
	// Output: Jane Doe <nil>
}
