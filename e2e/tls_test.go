package e2e

import (
	"crypto/tls"
	"crypto/x509"
	"net"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/fasthttp/websocket"

	"github.com/heraldrt/herald/edge"
	"github.com/heraldrt/herald/internal/heraldtest"
)

// selfSigned writes a self-signed certificate for 127.0.0.1/localhost and
// its key as PEM files (cert.pem, key.pem) and returns their paths and a
// pool trusting it.
func selfSigned(t *testing.T) (certFile, keyFile string, pool *x509.CertPool) {
	t.Helper()
	c := heraldtest.NewCert(t, "herald e2e")
	dir := t.TempDir()
	certFile, keyFile = filepath.Join(dir, "cert.pem"), filepath.Join(dir, "key.pem")
	c.Write(t, certFile, keyFile)
	return certFile, keyFile, c.Pool()
}

func tlsHerald(t *testing.T) (*node, *x509.CertPool) {
	certFile, keyFile, pool := selfSigned(t)
	n := startHerald(t, nil, func(ln net.Listener) (net.Listener, error) {
		return edge.TLSListener(ln, certFile, keyFile)
	})
	return n, pool
}

// TestTLSWebSocketAndSSE: Herald serves wss and https itself; both
// transports deliver over TLS (SSE hijacks the *tls.Conn).
func TestTLSWebSocketAndSSE(t *testing.T) {
	n, pool := tlsHerald(t)
	tc := &tls.Config{RootCAs: pool}
	client := tlsClient(tc)
	tok := heraldtest.Token(t, "42")

	d := websocket.Dialer{HandshakeTimeout: 5 * time.Second, TLSClientConfig: tc}
	ws, _, err := d.Dial("wss://"+n.Addr+"/ws/notifications/?token="+tok, nil)
	if err != nil {
		t.Fatalf("wss: %v", err)
	}
	defer ws.Close()
	if st := ws.UnderlyingConn().(*tls.Conn).ConnectionState(); st.NegotiatedProtocol != "http/1.1" && st.NegotiatedProtocol != "" {
		t.Fatalf("ALPN %q", st.NegotiatedProtocol)
	}
	sse := openSSE(t, client, n.URL()+"/sse/notifications/?token="+tok, nil)

	readWS := func() string {
		t.Helper()
		_ = ws.SetReadDeadline(time.Now().Add(5 * time.Second))
		_, b, err := ws.ReadMessage()
		if err != nil {
			t.Fatalf("wss read: %v", err)
		}
		return string(b)
	}
	if m := readWS(); !strings.Contains(m, "connection_established") {
		t.Fatalf("wss first message %s", m)
	}
	if _, m := sse.NextJSON(t, 5*time.Second); m["type"] != "connection_established" {
		t.Fatalf("https SSE first event %v", m)
	}
	for _, m := range workflow(604) {
		publish(t, client, n.URL(), "42", m)
		if got := readWS(); got != m {
			t.Fatalf("wss got %s, want %s", got, m)
		}
		if ev := sse.Next(t, 5*time.Second); ev.Data != m || ev.ID == "" {
			t.Fatalf("https SSE got %+v, want %s", ev, m)
		}
	}
	// Plain HTTP on the TLS port gets nowhere.
	if resp, err := (&http11Client{}).get("http://" + n.Addr + "/healthz"); err == nil && resp == 200 {
		t.Fatal("plain HTTP answered on the TLS listener")
	}
}

// TestTLSBrowser: Chromium (trusting the test certificate) loads the
// https demo page and herald.js connects over wss.
func TestTLSBrowser(t *testing.T) {
	n, _ := tlsHerald(t)
	b := startBrowser(t, "--ignore-certificate-errors")
	p := b.newPage()
	p.navigate(n.URL() + "/")
	tok := heraldtest.Token(t, "42")
	// herald.js as a module from a blob URL: no dependence on the /herald.js
	// route; the client derives wss:// from the https base URL.
	p.mustEval(`(async () => {
  const src = `+jsString(string(edge.ClientJS()))+`;
  const mod = await import(URL.createObjectURL(new Blob([src], {type: "text/javascript"})));
  window.got = [];
  const c = new mod.HeraldClient({url: location.origin, token: `+jsString(tok)+`});
  c.on("*", (d) => got.push(d.type));
  c.lifecycle.on("connected", (e) => { window.connectedVia = e.transport; });
  c.connect();
  window.tlsClient = c;
})()`, nil)
	p.waitFor(`window.connectedVia === "websocket"`, 15*time.Second)
	for _, m := range workflow(605) {
		publish(t, tlsClient(&tls.Config{InsecureSkipVerify: true}), n.URL(), "42", m)
	}
	p.waitFor(`got.length === 8 && got[7] === "oracle_upload_completed"`, 15*time.Second)
	var proto string
	p.mustEval(`location.protocol`, &proto)
	if proto != "https:" {
		t.Fatalf("page protocol %s", proto)
	}
}

// TestTLSListenerErrors: a missing or mismatched pair fails at startup,
// naming the files.
func TestTLSListenerErrors(t *testing.T) {
	certFile, keyFile, _ := selfSigned(t)
	otherCert, _, _ := selfSigned(t)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	for _, tc := range []struct{ cert, key, want string }{
		{"", keyFile, "set both"},
		{certFile + ".missing", keyFile, "cert.pem.missing"},
		{otherCert, keyFile, "key_file"},
	} {
		if _, err := edge.TLSListener(ln, tc.cert, tc.key); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("TLSListener(%q, %q) = %v, want an error containing %q", tc.cert, tc.key, err, tc.want)
		}
	}
}
