package edge

import (
	"bytes"
	"compress/gzip"
	"io"
	"net/http"
	"strings"
	"testing"

	"github.com/valyala/fasthttp"

	heraldjs "github.com/heraldrt/herald/clients/js"
)

// TestClientJSServing: /herald.js is the minified client, gzip- or
// brotli-compressed as the request accepts, under 6 KB gzipped, with a
// per-encoding ETag that revalidates to 304; /herald.<hash>.js is the same
// bytes cached for a year.
func TestClientJSServing(t *testing.T) {
	ts := startServer(t, nil)
	base := "http://" + ts.addr
	get := func(path, ae, inm string) (*http.Response, []byte) {
		t.Helper()
		req, _ := http.NewRequest("GET", base+path, nil)
		req.Header.Set("Accept-Encoding", ae) // set explicitly: no transparent decoding
		if inm != "" {
			req.Header.Set("If-None-Match", inm)
		}
		resp, err := http.DefaultTransport.RoundTrip(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp, b
	}
	decode := func(enc string, b []byte) []byte {
		t.Helper()
		var r io.Reader
		switch enc {
		case "br":
			out, err := fasthttp.AppendUnbrotliBytes(nil, b)
			if err != nil {
				t.Fatal(err)
			}
			return out
		case "gzip":
			zr, err := gzip.NewReader(bytes.NewReader(b))
			if err != nil {
				t.Fatal(err)
			}
			r = zr
		default:
			return b
		}
		out, err := io.ReadAll(r)
		if err != nil {
			t.Fatal(err)
		}
		return out
	}
	tags := map[string]bool{}
	for _, tc := range []struct{ ae, enc string }{
		{"", ""},
		{"identity", ""},
		{"gzip, deflate", "gzip"},
		{"gzip, deflate, br, zstd", "br"},
		{"br;q=0, gzip;q=0.5", "gzip"},
		{"*", "br"},
		{"br;q=0, *;q=0", ""},
	} {
		resp, body := get("/herald.js", tc.ae, "")
		if resp.StatusCode != 200 || resp.Header.Get("Content-Encoding") != tc.enc {
			t.Fatalf("Accept-Encoding %q: %d, Content-Encoding %q, want %q", tc.ae, resp.StatusCode, resp.Header.Get("Content-Encoding"), tc.enc)
		}
		if got := decode(tc.enc, body); !bytes.Equal(got, heraldjs.Minified) {
			t.Fatalf("Accept-Encoding %q: body is not the minified client", tc.ae)
		}
		if tc.enc == "gzip" && len(body) >= 6*1024 {
			t.Fatalf("herald.js is %d bytes gzipped, the budget is 6 KB", len(body))
		}
		if tc.enc != "" {
			t.Logf("%s: %d bytes (minified %d, source %d)", tc.enc, len(body), len(heraldjs.Minified), len(heraldjs.Source))
		}
		h := resp.Header
		if h.Get("Cache-Control") != "no-cache" || h.Get("Vary") != "Accept-Encoding" || h.Get("Access-Control-Allow-Origin") != "*" ||
			h.Get("Content-Type") != "text/javascript; charset=utf-8" || h.Get("X-Herald-Versioned") != ClientJSVersionedPath() {
			t.Fatalf("headers %v", h)
		}
		etag := h.Get("ETag")
		tags[etag] = true
		if r2, _ := get("/herald.js", tc.ae, `"other", `+etag); r2.StatusCode != http.StatusNotModified {
			t.Fatalf("If-None-Match %s: %d, want 304", etag, r2.StatusCode)
		}
	}
	if len(tags) != 3 {
		t.Fatalf("want one ETag per encoding, got %v", tags)
	}
	if len(heraldjs.Minified) >= len(heraldjs.Source)*2/3 {
		t.Fatalf("minified %d bytes vs source %d: not minified?", len(heraldjs.Minified), len(heraldjs.Source))
	}

	resp, body := get(ClientJSVersionedPath(), "gzip", "")
	if resp.StatusCode != 200 || resp.Header.Get("Cache-Control") != "public, max-age=31536000, immutable" ||
		!bytes.Equal(decode("gzip", body), heraldjs.Minified) {
		t.Fatalf("%s: %d %v", ClientJSVersionedPath(), resp.StatusCode, resp.Header)
	}
	if r, _ := get("/herald.0123456789ab.js", "", ""); r.StatusCode != 404 {
		t.Fatalf("a stale versioned name: %d, want 404", r.StatusCode)
	}
}

func TestAcceptedEncoding(t *testing.T) {
	for ae, want := range map[string]string{
		"": "", "gzip": "gzip", "GZIP": "gzip", "br": "br", "gzip;q=1, br;q=0.1": "br",
		"br;q=0": "", "br;q=0, gzip": "gzip", "deflate": "", "*;q=0": "", "gzip;q=bad": "gzip",
	} {
		if got := acceptedEncoding([]byte(ae)); got != want {
			t.Errorf("acceptedEncoding(%q) = %q, want %q", ae, got, want)
		}
	}
}

// FuzzClientJSHeaders: Accept-Encoding and If-None-Match come from any
// client. Whatever they hold, the choice is one of the three encodings, a
// coding is only chosen when the header names it (or "*"), and an ETag
// list only matches when it holds the tag or "*".
func FuzzClientJSHeaders(f *testing.F) {
	for _, s := range []string{"", "gzip", "br;q=0, gzip;q=0.5", "*;q=0", "gzip;q=bad", `"abc-gzip", W/"x"`, "*", ",,;;q=", "BR;Q=1"} {
		f.Add(s)
	}
	tag := []byte(`"tag-gzip"`)
	f.Fuzz(func(t *testing.T, h string) {
		enc := acceptedEncoding([]byte(h))
		low := strings.ToLower(h)
		switch enc {
		case "":
		case "br", "gzip":
			if !strings.Contains(low, enc) && !strings.Contains(low, "*") {
				t.Fatalf("acceptedEncoding(%q) = %q, a coding the header does not name", h, enc)
			}
		default:
			t.Fatalf("acceptedEncoding(%q) = %q", h, enc)
		}
		if etagMatches([]byte(h), tag) && !strings.Contains(h, string(tag)) && !strings.Contains(h, "*") {
			t.Fatalf("etagMatches(%q) without the tag or *", h)
		}
	})
}
