package edge

import (
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"os"
	"sync"
	"time"
)

// certReloadCheck is how often TLSListener's certificate files are checked
// for a newer version (renewed by certbot or similar); a renewed pair is
// used for new connections without a restart. server.tls.reload_check sets
// it for Serve.
const certReloadCheck = time.Minute

// TLSListener wraps ln so Herald serves https and wss with the PEM
// certificate chain in certFile and its key in keyFile (the
// server.tls.cert_file and server.tls.key_file keys). Both files are read
// now, so a bad pair fails at startup with the file names; afterwards they
// are re-read when they change. HTTP/1.1 is the only protocol offered by
// ALPN: WebSocket upgrades and Herald's hijacked SSE streams need it.
func TLSListener(ln net.Listener, certFile, keyFile string) (net.Listener, error) {
	return tlsListener(ln, certFile, keyFile, certReloadCheck)
}

func tlsListener(ln net.Listener, certFile, keyFile string, check time.Duration) (net.Listener, error) {
	cfg, err := tlsConfig(certFile, keyFile, check)
	if err != nil {
		return nil, err
	}
	return tls.NewListener(ln, cfg), nil
}

// TLSConfig returns the server TLS configuration used by TLSListener.
func TLSConfig(certFile, keyFile string) (*tls.Config, error) {
	return tlsConfig(certFile, keyFile, certReloadCheck)
}

func tlsConfig(certFile, keyFile string, check time.Duration) (*tls.Config, error) {
	if certFile == "" || keyFile == "" {
		return nil, errors.New("server.tls: set both cert_file and key_file")
	}
	r := &certReloader{certFile: certFile, keyFile: keyFile, check: check}
	if err := r.load(); err != nil {
		return nil, err
	}
	return &tls.Config{
		MinVersion:     tls.VersionTLS12,
		NextProtos:     []string{"http/1.1"},
		GetCertificate: r.get,
	}, nil
}

// certReloader holds the current key pair and swaps in a new one when the
// files' modification times change.
type certReloader struct {
	certFile, keyFile string
	check             time.Duration // how often get looks at the files

	mu      sync.Mutex
	cert    *tls.Certificate
	mod     [2]time.Time
	checked time.Time
}

func (r *certReloader) modTimes() ([2]time.Time, error) {
	var out [2]time.Time
	for i, f := range [2]string{r.certFile, r.keyFile} {
		st, err := os.Stat(f)
		if err != nil {
			return out, err
		}
		out[i] = st.ModTime()
	}
	return out, nil
}

func (r *certReloader) load() error {
	mod, err := r.modTimes()
	if err != nil {
		return fmt.Errorf("server.tls: %w", err)
	}
	cert, err := tls.LoadX509KeyPair(r.certFile, r.keyFile)
	if err != nil {
		return fmt.Errorf("server.tls: cert_file %s / key_file %s: %w", r.certFile, r.keyFile, err)
	}
	r.mu.Lock()
	r.cert, r.mod, r.checked = &cert, mod, time.Now()
	r.mu.Unlock()
	return nil
}

func (r *certReloader) get(*tls.ClientHelloInfo) (*tls.Certificate, error) {
	r.mu.Lock()
	cert, stale := r.cert, time.Since(r.checked) >= r.check
	if stale {
		r.checked = time.Now()
	}
	mod := r.mod
	r.mu.Unlock()
	if stale {
		if now, err := r.modTimes(); err == nil && now != mod {
			// A half-written pair fails to load; keep the old one and try
			// again at the next check.
			_ = r.load()
			r.mu.Lock()
			cert = r.cert
			r.mu.Unlock()
		}
	}
	return cert, nil
}
