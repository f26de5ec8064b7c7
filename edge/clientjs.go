package edge

import (
	"bytes"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"strconv"
	"strings"
	"sync"

	"github.com/valyala/fasthttp"

	heraldjs "github.com/heraldrt/herald/clients/js"
)

// The browser client (clients/js, docs/client.md), served whatever
// dev.enabled says: apps import it as an ES module, from Herald's origin or
// cross-origin (hence the CORS header; module scripts need it).
//
//   - /herald.js: the esbuild-minified build, revalidated on every load
//     (no-cache + ETag), so a Herald upgrade ships the matching client;
//   - /herald.<hash>.js: the same bytes under a content-addressed name,
//     cached for a year (immutable). /herald.js names it in its
//     X-Herald-Versioned header.
//
// Both are gzip- or brotli-compressed when the request accepts it; the
// three encodings are computed once.

// clientAsset is the client in each encoding.
type clientAsset struct {
	plain, gzip, br []byte
	etag            []byte // strong, of the plain bytes (per-encoding suffix added)
	versioned       string // "/herald.<hash>.js"
}

var clientAssetOnce = sync.OnceValue(func() *clientAsset {
	b := heraldjs.Minified
	sum := sha256.Sum256(b)
	return &clientAsset{
		plain:     b,
		gzip:      fasthttp.AppendGzipBytesLevel(nil, b, fasthttp.CompressBestCompression),
		br:        fasthttp.AppendBrotliBytesLevel(nil, b, fasthttp.CompressBrotliBestCompression),
		etag:      []byte(base64.RawURLEncoding.EncodeToString(sum[:12])),
		versioned: "/herald." + hex.EncodeToString(sum[:6]) + ".js",
	}
})

// ClientJS returns the browser client as served (minified), for tests and
// embedding.
func ClientJS() []byte { return heraldjs.Minified }

// ClientJSVersionedPath returns the long-cached path of the client,
// "/herald.<hash>.js".
func ClientJSVersionedPath() string { return clientAssetOnce().versioned }

// isClientJSPath reports whether path is /herald.js or the versioned path.
func isClientJSPath(path []byte) bool {
	return string(path) == "/herald.js" || string(path) == clientAssetOnce().versioned
}

// handleClientJS serves GET/HEAD of /herald.js and /herald.<hash>.js.
func (s *Server) handleClientJS(ctx *fasthttp.RequestCtx) {
	if !ctx.IsGet() && !ctx.IsHead() {
		writeError(ctx, fasthttp.StatusMethodNotAllowed, "method_not_allowed", "use GET")
		return
	}
	a := clientAssetOnce()
	body, enc := a.plain, ""
	switch acceptedEncoding(ctx.Request.Header.Peek("Accept-Encoding")) {
	case "br":
		body, enc = a.br, "br"
	case "gzip":
		body, enc = a.gzip, "gzip"
	}
	// One ETag per representation (RFC 9110 8.8.3): a cache must not
	// answer a gzip request with the brotli bytes.
	tag := make([]byte, 0, len(a.etag)+8)
	tag = append(tag, '"')
	tag = append(tag, a.etag...)
	if enc != "" {
		tag = append(tag, '-')
		tag = append(tag, enc...)
	}
	tag = append(tag, '"')

	h := &ctx.Response.Header
	if string(ctx.Path()) == a.versioned {
		h.Set("Cache-Control", "public, max-age=31536000, immutable")
	} else {
		h.Set("Cache-Control", "no-cache")
		h.Set("X-Herald-Versioned", a.versioned)
	}
	h.SetBytesV("ETag", tag)
	h.Set("Vary", "Accept-Encoding")
	h.Set("Access-Control-Allow-Origin", "*")
	h.Set("Access-Control-Expose-Headers", "X-Herald-Versioned, ETag")
	h.Set("X-Content-Type-Options", "nosniff")
	if inm := ctx.Request.Header.Peek("If-None-Match"); len(inm) > 0 && etagMatches(inm, tag) {
		ctx.SetStatusCode(fasthttp.StatusNotModified)
		return
	}
	ctx.SetContentType("text/javascript; charset=utf-8")
	if enc != "" {
		h.Set("Content-Encoding", enc)
	}
	ctx.SetBody(body)
}

// etagMatches reports whether an If-None-Match list names tag (or "*").
func etagMatches(inm, tag []byte) bool {
	for _, t := range bytes.Split(inm, []byte(",")) {
		t = bytes.TrimSpace(t)
		t = bytes.TrimPrefix(t, []byte("W/"))
		if bytes.Equal(t, tag) || bytes.Equal(t, []byte("*")) {
			return true
		}
	}
	return false
}

// acceptedEncoding picks "br", then "gzip", from an Accept-Encoding header
// (q=0 refuses a coding; "*" accepts any), or "" for identity.
func acceptedEncoding(ae []byte) string {
	if len(ae) == 0 {
		return ""
	}
	q := map[string]float64{}
	for _, part := range strings.Split(string(ae), ",") {
		name, params, _ := strings.Cut(part, ";")
		name = strings.ToLower(strings.TrimSpace(name))
		v := 1.0
		for _, p := range strings.Split(params, ";") {
			k, val, ok := strings.Cut(strings.TrimSpace(p), "=")
			if ok && strings.EqualFold(strings.TrimSpace(k), "q") {
				if f, err := strconv.ParseFloat(strings.TrimSpace(val), 64); err == nil {
					v = f
				}
			}
		}
		if name != "" {
			q[name] = v
		}
	}
	for _, enc := range []string{"br", "gzip"} {
		v, ok := q[enc]
		if !ok {
			v, ok = q["*"]
		}
		if ok && v > 0 {
			return enc
		}
	}
	return ""
}
