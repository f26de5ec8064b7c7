package auth

import (
	"bytes"
	"fmt"

	"github.com/valyala/fasthttp"
)

// Source says where TokenFromRequest found a token.
type Source string

// Token sources.
const (
	// SourceNone means no token was found.
	SourceNone Source = ""
	// SourceQuery is the Config.QueryParam query parameter.
	SourceQuery Source = "query"
	// SourceHeader is an "Authorization: Bearer" header.
	SourceHeader Source = "header"
	// SourceCookie is the Config.CookieName cookie.
	SourceCookie Source = "cookie"
)

// TokenFromRequest finds the request's token and says where: the
// Config.QueryParam query parameter first, then an "Authorization: Bearer"
// header (scheme matched case-insensitively), then the Config.CookieName
// cookie. Empty values are skipped. It returns "", SourceNone when there is
// no token.
func (v *Verifier) TokenFromRequest(ctx *fasthttp.RequestCtx) (string, Source) {
	if t := ctx.QueryArgs().Peek(v.cfg.QueryParam); len(t) > 0 {
		return string(t), SourceQuery
	}
	if t := bearer(ctx.Request.Header.Peek(fasthttp.HeaderAuthorization)); len(t) > 0 {
		return string(t), SourceHeader
	}
	if t := ctx.Request.Header.Cookie(v.cfg.CookieName); len(t) > 0 {
		return string(t), SourceCookie
	}
	return "", SourceNone
}

// bearer returns the credentials of an "Authorization: Bearer <token>"
// header value, or nil for another scheme.
func bearer(h []byte) []byte {
	const scheme = "bearer"
	h = bytes.TrimLeft(h, " \t")
	if len(h) <= len(scheme) || !bytes.EqualFold(h[:len(scheme)], []byte(scheme)) {
		return nil
	}
	if h[len(scheme)] != ' ' && h[len(scheme)] != '\t' {
		return nil
	}
	return bytes.Trim(h[len(scheme):], " \t")
}

// Authenticate finds the request's token with TokenFromRequest and verifies
// it. A request without a token yields an *Error with ReasonMissingToken.
func (v *Verifier) Authenticate(ctx *fasthttp.RequestCtx) (Claims, Source, error) {
	tok, src := v.TokenFromRequest(ctx)
	if tok == "" {
		return Claims{}, src, fail(ReasonMissingToken, fmt.Errorf(
			"send a token in the %q query parameter, an Authorization: Bearer header, or the %q cookie",
			v.cfg.QueryParam, v.cfg.CookieName))
	}
	c, err := v.Verify(tok)
	if err != nil {
		return Claims{}, src, err
	}
	return c, src, nil
}
