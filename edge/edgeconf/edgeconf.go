// Package edgeconf defines the configuration sections package edge owns:
// server, api, limits, admin and dev, each with its defaults and its
// validation. They live beside edge rather than in it because package
// config composes every section into config.Config, which edge consumes.
package edgeconf

import (
	"fmt"
	"net"
	"net/url"
	"os"
	"runtime"
	"strings"
	"time"

	"github.com/heraldrt/herald/internal/confkey"
	"github.com/heraldrt/herald/protocols"
)

// Server configures the listener and HTTP handling.
type Server struct {
	// Listen is the address Herald serves on.
	Listen string `koanf:"listen"`
	// ReadBufferSize is the per-connection buffer for request heads; it is
	// also the largest request head accepted.
	ReadBufferSize int `koanf:"read_buffer_size"`
	// HandshakeTimeout bounds reading a request head (slowloris guard).
	HandshakeTimeout time.Duration `koanf:"handshake_timeout"`
	// AllowedOrigins lists extra Origins allowed to open WebSockets and
	// event streams ("*" allows any; "http://localhost:*" any port of a
	// loopback host: localhost, 127.0.0.1, [::1]). The request's own host is always
	// allowed; requests without Origin (non-browsers) are allowed.
	AllowedOrigins []string `koanf:"allowed_origins"`
	// AllowAnyOriginWithCredentials lets allowed_origins hold "*" although
	// the browser's cookies authenticate (auth.cookie_name,
	// auth.backend_check): any site's page could then open its visitors'
	// streams. Refused unless this says so.
	AllowAnyOriginWithCredentials bool `koanf:"allow_any_origin_with_credentials"`
	// ShutdownTimeout bounds a graceful shutdown.
	ShutdownTimeout time.Duration `koanf:"shutdown_timeout"`
	// ReconnectWindow spreads client reconnects after a shutdown over this
	// long (close times and SSE retry hints are jittered within it).
	ReconnectWindow time.Duration `koanf:"reconnect_window"`
	// TLS makes Herald serve https and wss itself.
	TLS TLS `koanf:"tls"`
	// Netpoll parks idle WebSocket and SSE connections on epoll readiness
	// (Linux) instead of keeping a reader goroutine blocked on each, so an
	// idle connection holds no goroutine stack or read buffer. Connections
	// Herald serves over TLS itself keep their reader goroutine.
	Netpoll bool `koanf:"netpoll"`
}

// TLS configures certificate files for serving https/wss directly (without
// a TLS-terminating proxy). Both set or both empty. Renewed files are picked
// up for new connections within ReloadCheck (a minute), without a restart.
type TLS struct {
	// CertFile is the PEM certificate chain, leaf first (fullchain.pem).
	CertFile string `koanf:"cert_file"`
	// KeyFile is the PEM private key of the leaf certificate.
	KeyFile string `koanf:"key_file"`
	// ReloadCheck is how often a TLS handshake checks the files for a
	// renewed pair.
	ReloadCheck time.Duration `koanf:"reload_check"`
}

// API configures the backend publish API.
type API struct {
	// Key authenticates publishers (X-API-Key or Authorization: apikey).
	Key string `koanf:"key"`
	// MaxBodyBytes is the largest publish body accepted (413 above).
	MaxBodyBytes int `koanf:"max_body_bytes"`
	// MaxBatch is the most messages in one batch publish.
	MaxBatch int `koanf:"max_batch"`
	// IdempotencyWindow is how long idempotency keys are remembered.
	IdempotencyWindow time.Duration `koanf:"idempotency_window"`
}

// Limits configures admission and connection lifetime.
type Limits struct {
	// PerUser is the most concurrent connections one user may hold (WS and
	// SSE together); 0 disables the limit.
	PerUser int `koanf:"per_user"`
	// PerUserPolicy is reject_new (HTTP 429) or evict_oldest (the oldest
	// connection is closed with reason "replaced").
	PerUserPolicy string `koanf:"per_user_policy"`
	// MaxConnections caps this node's connections; 0 means unlimited.
	MaxConnections int `koanf:"max_connections"`
	// PerIP caps connections from one client IP; 0 means unlimited (the
	// default, because whole offices often share one NAT address).
	PerIP int `koanf:"per_ip"`
	// PerIPRate is the sustained connects per second allowed from one IP
	// (token bucket); 0 disables it.
	PerIPRate float64 `koanf:"per_ip_rate"`
	// PerIPBurst is the token bucket's size.
	PerIPBurst int `koanf:"per_ip_burst"`
	// ClientRate is how many WebSocket frames per second one connection
	// may send (pings, pongs, messages and fragments all count); above it,
	// with ClientBurst to spare, the connection is closed with 4429
	// rate_limited. 0 disables it.
	ClientRate float64 `koanf:"client_rate"`
	// ClientBurst is the client rate's token bucket size.
	ClientBurst int `koanf:"client_burst"`
	// TrustedProxies are CIDRs whose X-Forwarded-For is believed for the
	// client IP; from anyone else the header is ignored.
	TrustedProxies []string `koanf:"trusted_proxies"`
	// IdleTimeout closes connections that neither received a message nor
	// sent one for this long; 0 disables it.
	IdleTimeout time.Duration `koanf:"idle_timeout"`
	// MaxLifetime ends every connection after about this long (±10%
	// jitter) with a reconnect hint and its cursor; 0 disables it.
	MaxLifetime time.Duration `koanf:"max_lifetime"`
	// TokenExpiringLead is how long before its token expires an SSE client
	// gets a token_expiring event.
	TokenExpiringLead time.Duration `koanf:"token_expiring_lead"`
}

// Admin configures the admin API.
type Admin struct {
	// Key enables the admin API (X-Admin-Key); empty disables it.
	Key string `koanf:"key"`
	// Listen, when set, serves the admin API (and /metrics) on this
	// address only, e.g. an internal interface.
	Listen string `koanf:"listen"`
}

// Dev enables development conveniences. Never enable in production.
type Dev struct {
	// Enabled serves the demo page and the dev token endpoint.
	Enabled bool `koanf:"enabled"`
}

// Session returns c with the section's per-connection limits set:
// client_rate, client_burst, idle_timeout, max_lifetime and
// token_expiring_lead are enforced by the sessions.
func (c Limits) Session(pc protocols.Config) protocols.Config {
	pc.ClientRate, pc.ClientBurst = c.ClientRate, c.ClientBurst
	pc.IdleTimeout, pc.MaxLifetime = c.IdleTimeout, c.MaxLifetime
	pc.TokenExpiringLead = c.TokenExpiringLead
	return pc
}

// DefaultServer returns the server section's defaults.
func DefaultServer() Server {
	return Server{
		Listen:           "0.0.0.0:8000",
		ReadBufferSize:   4096,
		HandshakeTimeout: 10 * time.Second,
		ShutdownTimeout:  15 * time.Second,
		ReconnectWindow:  5 * time.Second,
		TLS:              TLS{ReloadCheck: time.Minute},
	}
}

// DefaultAPI returns the api section's defaults; idempotencyWindow is the
// broker's (fanout.DefaultIdempotencyWindow), which the API shares.
func DefaultAPI(idempotencyWindow time.Duration) API {
	return API{MaxBodyBytes: 1 << 20, MaxBatch: 1000, IdempotencyWindow: idempotencyWindow}
}

// DefaultLimits returns the limits section's defaults.
func DefaultLimits() Limits {
	return Limits{PerUser: 10, PerUserPolicy: "reject_new", PerIPBurst: 20, ClientRate: 20, ClientBurst: 50, TokenExpiringLead: 30 * time.Second}
}

// Validate checks the server section and returns every problem as a
// *confkey.Error naming its full key. Whether allowed_origins may hold
// "*" depends on the auth section and is checked by config.
func (s Server) Validate() error {
	var l confkey.List
	if _, _, err := net.SplitHostPort(s.Listen); err != nil {
		l.Add("server.listen", "%q is not host:port", s.Listen)
	}
	if s.Netpoll && runtime.GOOS != "linux" {
		l.Add("server.netpoll", "needs Linux (epoll); this is %s", runtime.GOOS)
	}
	if (s.TLS.CertFile == "") != (s.TLS.KeyFile == "") {
		l.Add("server.tls.cert_file", "set both server.tls.cert_file and server.tls.key_file, or neither")
	}
	for _, kf := range [][2]string{{"server.tls.cert_file", s.TLS.CertFile}, {"server.tls.key_file", s.TLS.KeyFile}} {
		if kf[1] != "" {
			if _, err := os.Stat(kf[1]); err != nil {
				l.Add(kf[0], "%v", err)
			}
		}
	}
	for _, o := range s.AllowedOrigins {
		if host, ok := strings.CutSuffix(o, ":*"); ok {
			u, err := url.Parse(host)
			if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" || u.Port() != "" || u.Path != "" || !LoopbackHost(u.Hostname()) {
				l.Add("server.allowed_origins", "%q: a port wildcard is only for a loopback origin such as http://localhost:*, http://127.0.0.1:* or http://[::1]:*", o)
			}
		} else if o != "*" {
			if u, err := url.Parse(o); err != nil || u.Scheme == "" || u.Host == "" || (u.Path != "" && u.Path != "/") {
				l.Add("server.allowed_origins", "%q is not an origin (scheme://host[:port])", o)
			}
		}
	}
	if s.ReadBufferSize < 1024 || s.ReadBufferSize > 1<<20 {
		l.Add("server.read_buffer_size", "must be between 1024 and 1048576, got %d", s.ReadBufferSize)
	}
	l.Between("server.handshake_timeout", s.HandshakeTimeout, 100*time.Millisecond, 5*time.Minute, false)
	l.Between("server.shutdown_timeout", s.ShutdownTimeout, time.Second, time.Hour, false)
	l.Between("server.reconnect_window", s.ReconnectWindow, 0, 10*time.Minute, false)
	l.Between("server.tls.reload_check", s.TLS.ReloadCheck, 100*time.Millisecond, 24*time.Hour, false)
	return l.Err()
}

// Validate checks the api section.
func (a API) Validate() error {
	var l confkey.List
	if len(a.Key) < 16 {
		l.Add("api.key", "set a key of at least 16 characters (got %d)", len(a.Key))
	}
	if a.MaxBodyBytes < 1024 || a.MaxBodyBytes > 256<<20 {
		l.Add("api.max_body_bytes", "must be between 1024 and 268435456, got %d", a.MaxBodyBytes)
	}
	if a.MaxBatch < 1 || a.MaxBatch > 100_000 {
		l.Add("api.max_batch", "must be between 1 and 100000, got %d", a.MaxBatch)
	}
	l.Between("api.idempotency_window", a.IdempotencyWindow, time.Second, 24*time.Hour, false)
	return l.Err()
}

// Validate checks the admin section; that admin.key differs from api.key
// is checked by config.
func (a Admin) Validate() error {
	var l confkey.List
	if a.Key != "" && len(a.Key) < 16 {
		l.Add("admin.key", "set a key of at least 16 characters (got %d)", len(a.Key))
	}
	if a.Listen != "" {
		if _, _, err := net.SplitHostPort(a.Listen); err != nil {
			l.Add("admin.listen", "%q is not host:port", a.Listen)
		}
	}
	return l.Err()
}

// Validate checks the limits section.
func (c Limits) Validate() error {
	var l confkey.List
	if c.PerUser < 0 {
		l.Add("limits.per_user", "must not be negative")
	}
	switch c.PerUserPolicy {
	case "reject_new", "evict_oldest":
	default:
		l.Add("limits.per_user_policy", "must be reject_new or evict_oldest, got %q", c.PerUserPolicy)
	}
	if c.MaxConnections < 0 || c.PerIP < 0 || c.PerIPRate < 0 {
		l.Add("limits", "max_connections, per_ip and per_ip_rate must not be negative")
	}
	if !(c.ClientRate >= 0) || c.ClientRate > 1e6 { // !(>= 0) also catches NaN
		l.Add("limits.client_rate", "must be between 0 (off) and 1000000 frames per second, got %v", c.ClientRate)
	}
	if c.ClientRate > 0 && c.ClientBurst < 1 {
		l.Add("limits.client_burst", "must be at least 1 when limits.client_rate is set, got %d", c.ClientBurst)
	}
	if c.PerIPRate > 0 && c.PerIPBurst < 1 {
		l.Add("limits.per_ip_burst", "must be at least 1 when limits.per_ip_rate is set")
	}
	for _, p := range c.TrustedProxies {
		if _, err := parseCIDR(p); err != nil {
			l.Add("limits.trusted_proxies", "%q is not an IP or CIDR", p)
		}
	}
	l.Between("limits.idle_timeout", c.IdleTimeout, 100*time.Millisecond, 30*24*time.Hour, true)
	l.Between("limits.max_lifetime", c.MaxLifetime, time.Second, 30*24*time.Hour, true)
	l.Between("limits.token_expiring_lead", c.TokenExpiringLead, 0, time.Hour, false)
	return l.Err()
}

// parseCIDR parses "10.0.0.0/8" or a bare IP (as a /32 or /128).
func parseCIDR(s string) (*net.IPNet, error) {
	if _, n, err := net.ParseCIDR(s); err == nil {
		return n, nil
	}
	ip := net.ParseIP(s)
	if ip == nil {
		return nil, fmt.Errorf("invalid IP or CIDR %q", s)
	}
	bits := 128
	if ip.To4() != nil {
		ip, bits = ip.To4(), 32
	}
	return &net.IPNet{IP: ip, Mask: net.CIDRMask(bits, bits)}, nil
}

// TrustedProxyNets parses limits.trusted_proxies (validated by Validate).
func (l Limits) TrustedProxyNets() []*net.IPNet {
	var out []*net.IPNet
	for _, p := range l.TrustedProxies {
		if n, err := parseCIDR(p); err == nil {
			out = append(out, n)
		}
	}
	return out
}

// LoopbackHost reports whether host (no port, IPv6 without brackets) is
// localhost or a loopback address: the hosts server.allowed_origins allows
// port wildcards for.
func LoopbackHost(host string) bool {
	if strings.EqualFold(host, "localhost") {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}
