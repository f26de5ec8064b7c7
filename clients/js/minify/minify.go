// Package minify minifies herald.js with esbuild's Go API. It is used by
// go generate and by the staleness test only, so esbuild stays out of the
// herald binary.
package minify

import (
	"errors"
	"fmt"
	"strings"

	"github.com/evanw/esbuild/pkg/api"
)

// JS returns src minified as an ES module for browsers of 2020 on (the
// syntax herald.js uses is left as is; whitespace, local names and the
// underscore-prefixed internal properties are squeezed).
func JS(src []byte) ([]byte, error) {
	r := api.Transform(string(src), api.TransformOptions{
		Loader:            api.LoaderJS,
		Format:            api.FormatESModule,
		Target:            api.ES2020,
		MinifyWhitespace:  true,
		MinifyIdentifiers: true,
		MinifySyntax:      true,
		MangleProps:       "^_", // internal fields and methods (_open, _ws, ...): never part of the API
		LegalComments:     api.LegalCommentsNone,
		Charset:           api.CharsetUTF8,
	})
	if len(r.Errors) > 0 {
		msgs := make([]string, 0, len(r.Errors))
		for _, m := range r.Errors {
			msgs = append(msgs, m.Text)
		}
		return nil, fmt.Errorf("minify herald.js: %w", errors.New(strings.Join(msgs, "; ")))
	}
	return r.Code, nil
}
