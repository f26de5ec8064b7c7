package fanout

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"net"
	"os"
	"sync"
	"time"
)

// TLS to Redis: the tls section, the preflight that names a refused
// client certificate, and telling a TLS refusal from an unreachable shard.

// RedisTLSConfig configures TLS to Redis.
type RedisTLSConfig struct {
	// Enabled turns TLS on.
	Enabled bool `koanf:"enabled"`
	// CAFile is a PEM bundle of CAs trusted for the server certificate; the
	// system pool when empty.
	CAFile string `koanf:"ca_file"`
	// CertFile and KeyFile are a PEM client certificate and key for mutual
	// TLS; both or neither.
	CertFile string `koanf:"cert_file"`
	// KeyFile is the client certificate's private key (see CertFile).
	KeyFile string `koanf:"key_file"`
	// InsecureSkipVerify disables server certificate verification (tests
	// only).
	InsecureSkipVerify bool `koanf:"insecure_skip_verify"`
	// ServerName overrides the name checked in the server certificate.
	ServerName string `koanf:"server_name"`
}

// Build returns the crypto/tls configuration, or nil when TLS is disabled.
// It fails when a file cannot be read or holds no usable certificate.
func (t RedisTLSConfig) Build() (*tls.Config, error) {
	if !t.Enabled {
		return nil, nil
	}
	conf := &tls.Config{MinVersion: tls.VersionTLS12, InsecureSkipVerify: t.InsecureSkipVerify, ServerName: t.ServerName}
	if t.CAFile != "" {
		pem, err := os.ReadFile(t.CAFile)
		if err != nil {
			return nil, fmt.Errorf("redis tls ca_file: %w", err)
		}
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("redis tls ca_file %s: no PEM certificates", t.CAFile)
		}
		conf.RootCAs = pool
	}
	if (t.CertFile == "") != (t.KeyFile == "") {
		return nil, errors.New("redis tls: set both cert_file and key_file, or neither")
	}
	if t.CertFile != "" {
		cert, err := tls.LoadX509KeyPair(t.CertFile, t.KeyFile)
		if err != nil {
			return nil, fmt.Errorf("redis tls client certificate: %w", err)
		}
		conf.Certificates = []tls.Certificate{cert}
	}
	return conf, nil
}

// tlsPreflight checks, concurrently, that every reachable shard completes
// a TLS handshake and keeps the connection open, returning one error per
// shard (nil: fine or unreachable). A server that checks client
// certificates under TLS 1.3 refuses one only after the handshake, with an
// alert the client may miss once it has written a command (the connection
// is then reset); reading before writing anything sees the alert.
func tlsPreflight(addrs []string, conf *tls.Config, dialer net.Dialer) []error {
	out := make([]error, len(addrs))
	var wg sync.WaitGroup
	for i, addr := range addrs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			out[i] = tlsCheck(addr, conf, dialer, tlsPreflightWait)
		}()
	}
	wg.Wait()
	return out
}

// CheckRedisTLS tells why a TLS connection to the Redis server at addr
// fails: it completes a handshake and waits up to wait for the server to
// refuse the connection (TLS 1.3 servers refuse a client certificate only
// after the handshake). It returns nil when the server accepted, or when
// addr is unreachable or hung.
func CheckRedisTLS(addr string, conf *tls.Config, dialer net.Dialer, wait time.Duration) error {
	return tlsCheck(addr, conf, dialer, wait)
}

// tlsCheck dials addr, completes a TLS handshake and waits up to wait for
// the server to refuse the connection; nil when it did not (or when addr
// is unreachable).
func tlsCheck(addr string, conf *tls.Config, dialer net.Dialer, wait time.Duration) error {
	raw, err := dialer.Dial("tcp", addr)
	if err != nil {
		return nil // unreachable: not a refusal, retried later
	}
	defer raw.Close()
	c := conf.Clone()
	if c.ServerName == "" {
		c.ServerName, _, _ = net.SplitHostPort(addr)
	}
	tc := tls.Client(raw, c)
	timeout := dialer.Timeout
	if timeout <= 0 {
		timeout = 2 * time.Second
	}
	_ = tc.SetDeadline(time.Now().Add(timeout))
	if err := tc.Handshake(); err != nil {
		if ne := net.Error(nil); errors.As(err, &ne) && ne.Timeout() {
			return nil // a hung server is unavailable, not refusing
		}
		return fmt.Errorf("tls handshake: %w", err)
	}
	_ = tc.SetReadDeadline(time.Now().Add(wait))
	var one [1]byte
	_, err = tc.Read(one[:])
	if ne := net.Error(nil); errors.As(err, &ne) && ne.Timeout() {
		return nil // the server waits for a command: it accepted us
	}
	if err == nil {
		return errors.New("tls: the server spoke first")
	}
	return fmt.Errorf("tls: the server closed the connection after the handshake: %w", err)
}

// tlsPreflightWait is how long tlsCheck waits for a refusal after the
// handshake.
const tlsPreflightWait = 300 * time.Millisecond

// isTLSRefusal reports whether err is a certificate or TLS protocol
// refusal (either side).
func isTLSRefusal(err error) bool {
	var (
		unknownCA *x509.UnknownAuthorityError
		unknownV  x509.UnknownAuthorityError
		hostname  x509.HostnameError
		hostnameP *x509.HostnameError
		invalid   x509.CertificateInvalidError
		invalidP  *x509.CertificateInvalidError
		verify    *tls.CertificateVerificationError
		record    tls.RecordHeaderError
		op        *net.OpError
	)
	switch {
	case errors.As(err, &unknownCA), errors.As(err, &unknownV), errors.As(err, &hostname), errors.As(err, &hostnameP),
		errors.As(err, &invalid), errors.As(err, &invalidP), errors.As(err, &verify), errors.As(err, &record):
		return true
	case errors.As(err, &op) && op.Op == "remote error": // a TLS alert from the server, e.g. certificate required
		return true
	}
	return false
}
