package edge

import (
	"bytes"
	"crypto/sha256"
	_ "embed"
	"encoding/base64"

	"github.com/valyala/fasthttp"
)

// The browser client (docs/client.md), served at /herald.js whatever
// dev.enabled says: apps import it as an ES module, from Herald's origin or
// cross-origin (hence the CORS header; module scripts need it).

//go:embed static/herald.js
var clientJS []byte

// clientJSTag is the strong ETag of clientJS.
var clientJSTag = func() []byte {
	sum := sha256.Sum256(clientJS)
	return []byte(`"` + base64.RawURLEncoding.EncodeToString(sum[:12]) + `"`)
}()

// ClientJS returns the browser client's source (for tests and embedding).
func ClientJS() []byte { return clientJS }

// handleClientJS serves GET/HEAD /herald.js with an ETag; browsers
// revalidate on every load (no-cache), so a new Herald version is picked up
// at once.
func (s *Server) handleClientJS(ctx *fasthttp.RequestCtx) {
	if !ctx.IsGet() && !ctx.IsHead() {
		writeError(ctx, fasthttp.StatusMethodNotAllowed, "method_not_allowed", "use GET")
		return
	}
	h := &ctx.Response.Header
	h.Set("Cache-Control", "no-cache")
	h.SetBytesV("ETag", clientJSTag)
	h.Set("Access-Control-Allow-Origin", "*")
	h.Set("X-Content-Type-Options", "nosniff")
	if inm := ctx.Request.Header.Peek("If-None-Match"); len(inm) > 0 && bytes.Contains(inm, clientJSTag) {
		ctx.SetStatusCode(fasthttp.StatusNotModified)
		return
	}
	ctx.SetContentType("text/javascript; charset=utf-8")
	ctx.SetBody(clientJS)
}
