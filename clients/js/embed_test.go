package heraldjs

import (
	"bytes"
	"compress/gzip"
	"testing"

	"github.com/heraldrt/herald/clients/js/minify"
)

// TestMinifiedFresh fails when herald.min.js was not regenerated after a
// change to herald.js (run `go generate ./clients/js/`).
func TestMinifiedFresh(t *testing.T) {
	want, err := minify.JS(Source)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(want, Minified) {
		t.Fatalf("clients/js/herald.min.js is stale (%d bytes, want %d): run go generate ./clients/js/", len(Minified), len(want))
	}
	var gz bytes.Buffer
	w, _ := gzip.NewWriterLevel(&gz, gzip.BestCompression)
	w.Write(Minified)
	w.Close()
	t.Logf("herald.js %d bytes, minified %d, gzipped %d", len(Source), len(Minified), gz.Len())
	if gz.Len() >= 6*1024 {
		t.Fatalf("minified herald.js is %d bytes gzipped, the budget is 6 KB", gz.Len())
	}
}
