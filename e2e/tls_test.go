package e2e

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/fasthttp/websocket"

	"github.com/heraldrt/herald/edge"
)

// selfSigned writes a self-signed certificate for 127.0.0.1/localhost and
// its key as PEM files and returns their paths and a pool trusting it.
func selfSigned(t *testing.T) (certFile, keyFile string, pool *x509.CertPool) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber:          big.NewInt(time.Now().UnixNano()),
		Subject:               pkix.Name{CommonName: "herald e2e"},
		NotBefore:             time.Now().Add(-time.Hour),
		NotAfter:              time.Now().Add(24 * time.Hour),
		KeyUsage:              x509.KeyUsageDigitalSignature | x509.KeyUsageCertSign,
		ExtKeyUsage:           []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		BasicConstraintsValid: true,
		IsCA:                  true,
		IPAddresses:           []net.IP{net.ParseIP("127.0.0.1")},
		DNSNames:              []string{"localhost"},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	kder, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	certFile, keyFile = filepath.Join(dir, "cert.pem"), filepath.Join(dir, "key.pem")
	if err := os.WriteFile(certFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(keyFile, pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: kder}), 0o600); err != nil {
		t.Fatal(err)
	}
	cert, _ := x509.ParseCertificate(der)
	pool = x509.NewCertPool()
	pool.AddCert(cert)
	return certFile, keyFile, pool
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
	tok := token(t, "42")

	d := websocket.Dialer{HandshakeTimeout: 5 * time.Second, TLSClientConfig: tc}
	ws, _, err := d.Dial("wss://"+n.addr+"/ws/notifications/?token="+tok, nil)
	if err != nil {
		t.Fatalf("wss: %v", err)
	}
	defer ws.Close()
	if st := ws.UnderlyingConn().(*tls.Conn).ConnectionState(); st.NegotiatedProtocol != "http/1.1" && st.NegotiatedProtocol != "" {
		t.Fatalf("ALPN %q", st.NegotiatedProtocol)
	}
	sse := openSSE(t, client, n.httpURL()+"/sse/notifications/?token="+tok, nil)

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
	if _, m := sse.nextJSON(t, 5*time.Second); m["type"] != "connection_established" {
		t.Fatalf("https SSE first event %v", m)
	}
	for _, m := range workflow(604) {
		publish(t, client, n.httpURL(), "42", m)
		if got := readWS(); got != m {
			t.Fatalf("wss got %s, want %s", got, m)
		}
		if ev := sse.next(t, 5*time.Second); ev.Data != m || ev.ID == "" {
			t.Fatalf("https SSE got %+v, want %s", ev, m)
		}
	}
	// Plain HTTP on the TLS port gets nowhere.
	if resp, err := (&http11Client{}).get("http://" + n.addr + "/healthz"); err == nil && resp == 200 {
		t.Fatal("plain HTTP answered on the TLS listener")
	}
}

// TestTLSBrowser: Chromium (trusting the test certificate) loads the
// https demo page and herald.js connects over wss.
func TestTLSBrowser(t *testing.T) {
	n, _ := tlsHerald(t)
	b := startBrowser(t, "--ignore-certificate-errors")
	p := b.newPage()
	p.navigate(n.httpURL() + "/")
	tok := token(t, "42")
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
		publish(t, tlsClient(&tls.Config{InsecureSkipVerify: true}), n.httpURL(), "42", m)
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
