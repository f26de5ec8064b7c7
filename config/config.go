// Package config defines Herald's configuration: one typed struct, loaded
// by koanf from a YAML file, then HERALD_* environment variables, then
// command-line flags, and validated once at start.
package config

import (
	"errors"
	"fmt"
	"net"
	"net/url"
	"os"
	"reflect"
	"strconv"
	"strings"
	"time"

	"github.com/knadh/koanf/parsers/yaml"
	"github.com/knadh/koanf/providers/env/v2"
	"github.com/knadh/koanf/providers/file"
	"github.com/knadh/koanf/providers/posflag"
	"github.com/knadh/koanf/providers/structs"
	"github.com/knadh/koanf/v2"
	"github.com/spf13/pflag"

	"github.com/heraldrt/herald/compat"
	"github.com/heraldrt/herald/edge/auth"
	"github.com/heraldrt/herald/fanout"
	"github.com/heraldrt/herald/internal/confkey"
	"github.com/heraldrt/herald/protocols"
	"github.com/heraldrt/herald/telemetry"
)

// Config is Herald's whole configuration. Keys are the koanf tags joined by
// dots (server.listen); env variables use HERALD_ and "__" for the dots
// (HERALD_SERVER__LISTEN).
type Config struct {
	Server  Server                  `koanf:"server"`
	Auth    auth.Settings           `koanf:"auth"`
	API     API                     `koanf:"api"`
	Fanout  fanout.Config           `koanf:"fanout"`
	History History                 `koanf:"history"`
	Stream  protocols.StreamConfig  `koanf:"stream"`
	Limits  Limits                  `koanf:"limits"`
	Tracing telemetry.TracingConfig `koanf:"tracing"`
	Log     Log                     `koanf:"log"`
	Dev     Dev                     `koanf:"dev"`
	Admin   Admin                   `koanf:"admin"`
	// Compat configures migration aids (channels_redis ingest).
	Compat Compat `koanf:"compat"`
	// Reload configures live reloading of the config file.
	Reload Reload `koanf:"config"`
}

// Reload configures live reloading (section "config"). SIGHUP always
// reloads; with Watch the config file is also watched for changes.
type Reload struct {
	// Watch reloads when the config file's content changes.
	Watch bool `koanf:"watch"`
	// WatchInterval is how often the file is checked.
	WatchInterval time.Duration `koanf:"watch_interval"`
}

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

// History configures per-channel history used for resume.
type History struct {
	// Size is how many messages each channel keeps.
	Size int `koanf:"size"`
	// TTL is how long a message stays resumable.
	TTL time.Duration `koanf:"ttl"`
	// Retention overrides size and TTL for channels matching a pattern:
	// "pattern=size/ttl" ("user:*=200/24h", "broadcast=20/", "audit:*=/1h");
	// the first matching rule wins, an empty part keeps the default.
	Retention []string `koanf:"retention"`
}

// RetentionRule is one parsed history.retention entry.
type RetentionRule struct {
	Pattern string
	Size    int
	TTL     time.Duration
}

// RetentionRules parses history.retention.
func (h History) RetentionRules() ([]RetentionRule, error) {
	var out []RetentionRule
	for i, r := range h.Retention {
		pat, spec, ok := strings.Cut(r, "=")
		sizeStr, ttlStr, ok2 := strings.Cut(spec, "/")
		if !ok || !ok2 || pat == "" {
			return nil, fmt.Errorf("history.retention[%d]: %q must be \"pattern=size/ttl\"", i, r)
		}
		rule := RetentionRule{Pattern: pat}
		if sizeStr != "" {
			n, err := strconv.Atoi(sizeStr)
			if err != nil || n < 1 || n > 1_000_000 {
				return nil, fmt.Errorf("history.retention[%d]: size %q must be 1..1000000", i, sizeStr)
			}
			rule.Size = n
		}
		if ttlStr != "" {
			d, err := time.ParseDuration(ttlStr)
			if err != nil || d <= 0 {
				return nil, fmt.Errorf("history.retention[%d]: ttl %q must be a positive duration", i, ttlStr)
			}
			rule.TTL = d
		}
		out = append(out, rule)
	}
	return out, nil
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

// Log configures logging.
type Log struct {
	// Level is debug, info, warn or error.
	Level string `koanf:"level"`
	// Format is text or json.
	Format string `koanf:"format"`
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

// Default returns the built-in defaults, the same values configs/herald.yaml
// documents.
func Default() Config {
	return Config{
		Server: Server{
			Listen:           "0.0.0.0:8000",
			ReadBufferSize:   4096,
			HandshakeTimeout: 10 * time.Second,
			ShutdownTimeout:  15 * time.Second,
			ReconnectWindow:  5 * time.Second,
			TLS:              TLS{ReloadCheck: time.Minute},
		},
		Auth:    auth.DefaultSettings(),
		Compat:  Compat{ChannelsRedis: compat.DefaultConfig()},
		API:     API{MaxBodyBytes: 1 << 20, MaxBatch: 1000, IdempotencyWindow: fanout.DefaultIdempotencyWindow},
		Fanout:  fanout.DefaultConfig(),
		History: History{Size: fanout.DefaultHistorySize, TTL: fanout.DefaultHistoryTTL},
		Stream:  protocols.DefaultStreamConfig(),
		Limits:  Limits{PerUser: 10, PerUserPolicy: "reject_new", PerIPBurst: 20, ClientRate: 20, ClientBurst: 50, TokenExpiringLead: 30 * time.Second},
		Log:     Log{Level: "info", Format: "text"},
		Reload:  Reload{WatchInterval: 2 * time.Second},
		Tracing: telemetry.DefaultTracingConfig(),
	}
}

// Flags returns the command-line flags that override configuration keys
// (each named by its key, e.g. --server.listen).
func Flags() *pflag.FlagSet {
	fs := pflag.NewFlagSet("herald", pflag.ContinueOnError)
	fs.String("config", "configs/herald.yaml", "YAML config file")
	fs.String("server.listen", "", "listen address")
	fs.String("fanout.broker", "", "broker: memory or redis")
	fs.StringSlice("fanout.redis.shards", nil, "Redis shard addresses")
	fs.String("log.level", "", "log level: debug, info, warn, error")
	fs.String("log.format", "", "log format: text or json")
	fs.Bool("dev.enabled", false, "serve the demo page and dev endpoints")
	return fs
}

// Load builds the configuration: defaults, then the YAML file named by the
// --config flag (a missing default file is not an error, a missing named
// file is), then HERALD_* environment variables, then the flags that were
// set. It validates the result.
func Load(fs *pflag.FlagSet, environ []string) (Config, error) {
	cfg, err := Read(fs, environ)
	if err != nil {
		return Config{}, err
	}
	if err := cfg.Validate(); err != nil {
		return Config{}, err
	}
	return cfg, nil
}

// Read is Load without Validate: the sources are merged and checked
// strictly (unknown keys and variables, durations without a unit), but the
// values are not. `herald token` uses it, as signing needs only
// auth.jwt.hmac_secret.
func Read(fs *pflag.FlagSet, environ []string) (Config, error) {
	k := koanf.New(".")
	if err := k.Load(structs.Provider(Default(), "koanf"), nil); err != nil {
		return Config{}, fmt.Errorf("config defaults: %w", err)
	}
	path, _ := fs.GetString("config")
	if _, err := os.Stat(path); err == nil {
		fk := koanf.New(".")
		if err := fk.Load(file.Provider(path), yaml.Parser()); err != nil {
			return Config{}, fmt.Errorf("config file %s: %w", path, err)
		}
		if err := checkFileKeys("file "+path, fk.All()); err != nil {
			return Config{}, err
		}
		if err := k.Merge(fk); err != nil {
			return Config{}, fmt.Errorf("config file %s: %w", path, err)
		}
	} else if fs.Changed("config") {
		return Config{}, fmt.Errorf("config file %s: %w", path, err)
	}
	var envErrs []error
	if err := k.Load(env.Provider(".", env.Opt{
		Prefix: "HERALD_",
		TransformFunc: func(name, value string) (string, any) {
			if nonConfigEnv[name] {
				return "", nil
			}
			key := strings.ToLower(strings.TrimPrefix(name, "HERALD_"))
			key = strings.ReplaceAll(key, "__", ".")
			if !keyKnown(key) || knownKeys[key].section {
				envErrs = append(envErrs, unknownKeyError("environment", key, true))
				return "", nil
			}
			if err := checkDuration(key, value); err != nil {
				envErrs = append(envErrs, fmt.Errorf("%w (from %s)", err, name))
				return "", nil
			}
			// Only list keys are split: a secret or password may contain
			// commas and must be taken verbatim.
			if listKeys[key] {
				return key, SplitList(value)
			}
			return key, value
		},
		EnvironFunc: func() []string { return environ },
	}), nil); err != nil {
		return Config{}, fmt.Errorf("config env: %w", err)
	}
	if err := errors.Join(envErrs...); err != nil {
		return Config{}, err
	}
	if err := k.Load(posflag.ProviderWithFlag(fs, ".", k, func(f *pflag.Flag) (string, any) {
		if f.Name == "config" || !f.Changed {
			return "", nil
		}
		return f.Name, posflag.FlagVal(fs, f)
	}), nil); err != nil {
		return Config{}, fmt.Errorf("config flags: %w", err)
	}
	var cfg Config
	if err := k.UnmarshalWithConf("", &cfg, koanf.UnmarshalConf{Tag: "koanf"}); err != nil {
		return Config{}, fmt.Errorf("config: %w", err)
	}
	return cfg, nil
}

// listKeys are the keys of Config's []string fields (server.allowed_origins,
// fanout.redis.shards, ...): the keys whose environment values are
// comma-separated lists.
var listKeys = func() map[string]bool {
	keys := make(map[string]bool)
	var walk func(t reflect.Type, prefix string)
	walk = func(t reflect.Type, prefix string) {
		for i := range t.NumField() {
			f := t.Field(i)
			name, _, _ := strings.Cut(f.Tag.Get("koanf"), ",")
			if name == "" || name == "-" {
				continue
			}
			switch {
			case f.Type.Kind() == reflect.Struct:
				walk(f.Type, prefix+name+".")
			case f.Type.Kind() == reflect.Slice && f.Type.Elem().Kind() == reflect.String:
				keys[prefix+name] = true
			}
		}
	}
	walk(reflect.TypeFor[Config](), "")
	return keys
}()

// SplitList splits a comma-separated list, trimming spaces and dropping
// empty entries; "" is the empty list.
func SplitList(v string) []string {
	var out []string
	for _, s := range strings.Split(v, ",") {
		if s = strings.TrimSpace(s); s != "" {
			out = append(out, s)
		}
	}
	return out
}

// KeyError is a validation error naming the offending configuration key;
// every section's Validate reports its problems with it.
type KeyError = confkey.Error

// Validate checks every value and returns all problems, each naming its key.
func (c *Config) Validate() error {
	var errs []error
	bad := func(key, format string, args ...any) {
		errs = append(errs, &KeyError{Key: key, Msg: fmt.Sprintf(format, args...)})
	}
	if _, _, err := net.SplitHostPort(c.Server.Listen); err != nil {
		bad("server.listen", "%q is not host:port", c.Server.Listen)
	}
	if (c.Server.TLS.CertFile == "") != (c.Server.TLS.KeyFile == "") {
		bad("server.tls.cert_file", "set both server.tls.cert_file and server.tls.key_file, or neither")
	}
	for key, f := range map[string]string{"server.tls.cert_file": c.Server.TLS.CertFile, "server.tls.key_file": c.Server.TLS.KeyFile} {
		if f != "" {
			if _, err := os.Stat(f); err != nil {
				bad(key, "%v", err)
			}
		}
	}
	for _, o := range c.Server.AllowedOrigins {
		if host, ok := strings.CutSuffix(o, ":*"); ok {
			u, err := url.Parse(host)
			if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" || u.Port() != "" || u.Path != "" || !LoopbackHost(u.Hostname()) {
				bad("server.allowed_origins", "%q: a port wildcard is only for a loopback origin such as http://localhost:*, http://127.0.0.1:* or http://[::1]:*", o)
			}
		}
	}
	if c.Server.ReadBufferSize < 1024 || c.Server.ReadBufferSize > 1<<20 {
		bad("server.read_buffer_size", "must be between 1024 and 1048576, got %d", c.Server.ReadBufferSize)
	}
	// between refuses a duration outside [lo, hi]; zeroOK also allows 0
	// (the feature is off). The bounds keep one typo from hurting every
	// client (a 25 ns ping interval is a ping flood).
	between := func(key string, d, lo, hi time.Duration, zeroOK bool) {
		if zeroOK && d == 0 {
			return
		}
		if d < lo || d > hi {
			off := ""
			if zeroOK {
				off = " (or 0 to turn it off)"
			}
			bad(key, "must be between %s and %s%s, got %s", confkey.FormatDuration(lo), confkey.FormatDuration(hi), off, d)
		}
	}
	between("server.handshake_timeout", c.Server.HandshakeTimeout, 100*time.Millisecond, 5*time.Minute, false)
	between("server.shutdown_timeout", c.Server.ShutdownTimeout, time.Second, time.Hour, false)
	between("server.reconnect_window", c.Server.ReconnectWindow, 0, 10*time.Minute, false)
	between("config.watch_interval", c.Reload.WatchInterval, 100*time.Millisecond, time.Hour, false)
	between("server.tls.reload_check", c.Server.TLS.ReloadCheck, 100*time.Millisecond, 24*time.Hour, false)
	for _, o := range c.Server.AllowedOrigins {
		if o == "*" && !c.Server.AllowAnyOriginWithCredentials {
			bad("server.allowed_origins", "\"*\" would let any site's page open its visitors' streams with their cookies (auth.cookie_name %q%s): list the origins, or set server.allow_any_origin_with_credentials: true", c.Auth.CookieName, map[bool]string{true: ", auth.backend_check.url", false: ""}[c.Auth.BackendCheck.URL != ""])
		} else if o != "*" && !strings.HasSuffix(o, ":*") {
			if u, err := url.Parse(o); err != nil || u.Scheme == "" || u.Host == "" || (u.Path != "" && u.Path != "/") {
				bad("server.allowed_origins", "%q is not an origin (scheme://host[:port])", o)
			}
		}
	}
	if err := c.Auth.Validate(); err != nil {
		errs = append(errs, err)
	}
	if len(c.API.Key) < 16 {
		bad("api.key", "set a key of at least 16 characters (got %d)", len(c.API.Key))
	}
	if c.Admin.Key != "" && len(c.Admin.Key) < 16 {
		bad("admin.key", "set a key of at least 16 characters (got %d)", len(c.Admin.Key))
	}
	if c.Admin.Key != "" && c.Admin.Key == c.API.Key {
		bad("admin.key", "must differ from api.key")
	}
	if c.Admin.Listen != "" {
		if _, _, err := net.SplitHostPort(c.Admin.Listen); err != nil {
			bad("admin.listen", "%q is not host:port", c.Admin.Listen)
		}
	}
	if c.API.MaxBodyBytes < 1024 || c.API.MaxBodyBytes > 256<<20 {
		bad("api.max_body_bytes", "must be between 1024 and 268435456, got %d", c.API.MaxBodyBytes)
	}
	if c.API.MaxBatch < 1 || c.API.MaxBatch > 100_000 {
		bad("api.max_batch", "must be between 1 and 100000, got %d", c.API.MaxBatch)
	}
	between("api.idempotency_window", c.API.IdempotencyWindow, time.Second, 24*time.Hour, false)
	if err := c.Fanout.Validate(); err != nil {
		errs = append(errs, err)
	}
	if c.History.Size < 1 || c.History.Size > 1_000_000 {
		bad("history.size", "must be between 1 and 1000000, got %d", c.History.Size)
	}
	between("history.ttl", c.History.TTL, time.Second, 30*24*time.Hour, false)
	if _, err := c.History.RetentionRules(); err != nil {
		errs = append(errs, &KeyError{Key: "history.retention", Msg: err.Error()})
	}
	if err := c.Stream.Validate(); err != nil {
		errs = append(errs, err)
	}
	if c.Limits.PerUser < 0 {
		bad("limits.per_user", "must not be negative")
	}
	switch c.Limits.PerUserPolicy {
	case "reject_new", "evict_oldest":
	default:
		bad("limits.per_user_policy", "must be reject_new or evict_oldest, got %q", c.Limits.PerUserPolicy)
	}
	if c.Limits.MaxConnections < 0 || c.Limits.PerIP < 0 || c.Limits.PerIPRate < 0 {
		bad("limits", "max_connections, per_ip and per_ip_rate must not be negative")
	}
	if !(c.Limits.ClientRate >= 0) || c.Limits.ClientRate > 1e6 { // !(>= 0) also catches NaN
		bad("limits.client_rate", "must be between 0 (off) and 1000000 frames per second, got %v", c.Limits.ClientRate)
	}
	if c.Limits.ClientRate > 0 && c.Limits.ClientBurst < 1 {
		bad("limits.client_burst", "must be at least 1 when limits.client_rate is set, got %d", c.Limits.ClientBurst)
	}
	if c.Limits.PerIPRate > 0 && c.Limits.PerIPBurst < 1 {
		bad("limits.per_ip_burst", "must be at least 1 when limits.per_ip_rate is set")
	}
	for _, p := range c.Limits.TrustedProxies {
		if _, err := parseCIDR(p); err != nil {
			bad("limits.trusted_proxies", "%q is not an IP or CIDR", p)
		}
	}
	between("limits.idle_timeout", c.Limits.IdleTimeout, 100*time.Millisecond, 30*24*time.Hour, true)
	between("limits.max_lifetime", c.Limits.MaxLifetime, time.Second, 30*24*time.Hour, true)
	between("limits.token_expiring_lead", c.Limits.TokenExpiringLead, 0, time.Hour, false)
	if err := c.Tracing.Validate(); err != nil {
		errs = append(errs, err)
	}
	switch c.Log.Level {
	case "debug", "info", "warn", "error":
	default:
		bad("log.level", "must be debug, info, warn or error, got %q", c.Log.Level)
	}
	switch c.Log.Format {
	case "text", "json":
	default:
		bad("log.format", "must be text or json, got %q", c.Log.Format)
	}
	if err := c.Compat.ChannelsRedis.Validate(); err != nil {
		errs = append(errs, err)
	}
	return errors.Join(errs...)
}

// Masked returns a copy of c with secrets replaced, for printing.
func (c Config) Masked() Config {
	mask := func(s *string) {
		if *s != "" {
			*s = "******"
		}
	}
	mask(&c.Auth.JWT.HMACSecret)
	secrets := make([]string, len(c.Auth.JWT.HMACSecrets))
	for i := range secrets {
		secrets[i] = "******"
	}
	c.Auth.JWT.HMACSecrets = secrets
	mask(&c.API.Key)
	mask(&c.Admin.Key)
	mask(&c.Fanout.Redis.Password)
	mask(&c.Fanout.Redis.Sentinel.Password)
	hosts := make([]string, len(c.Compat.ChannelsRedis.Hosts))
	for i, h := range c.Compat.ChannelsRedis.Hosts {
		if u, err := url.Parse(h); err == nil && u.User != nil {
			u.User = url.User("******")
			h = u.String()
		}
		hosts[i] = h
	}
	c.Compat.ChannelsRedis.Hosts = hosts
	return c
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
