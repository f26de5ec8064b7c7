// Package heraldjs embeds the browser client (herald.js, the npm package in
// this directory) for Herald to serve at /herald.js.
package heraldjs

import _ "embed"

//go:generate go run gen.go

// Source is herald.js as published in the npm package.
//
//go:embed herald.js
var Source []byte

// Minified is Source minified by esbuild (herald.min.js, written by
// `go generate ./clients/js/`; a test fails when it is stale).
//
//go:embed herald.min.js
var Minified []byte
