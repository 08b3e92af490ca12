//go:build ignore

// A generator run by go generate, not a part of the package: its
// imports are its own.
package main

import "net/http"

func main() { _, _ = http.Get("https://example.com/rates.json") }
