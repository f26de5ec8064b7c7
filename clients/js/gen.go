//go:build ignore

// gen writes herald.min.js from herald.js (go generate ./clients/js/).
package main

import (
	"log"
	"os"

	"github.com/heraldrt/herald/clients/js/minify"
)

func main() {
	src, err := os.ReadFile("herald.js")
	if err != nil {
		log.Fatal(err)
	}
	out, err := minify.JS(src)
	if err != nil {
		log.Fatal(err)
	}
	if err := os.WriteFile("herald.min.js", out, 0o644); err != nil {
		log.Fatal(err)
	}
}
