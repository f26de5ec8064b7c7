// Package config composes Herald's configuration: one typed struct whose
// sections are defined, defaulted and validated by the packages that own
// them (fanout, protocols, edge/auth, compat, telemetry, edge/edgeconf),
// loaded by koanf from a YAML file, then HERALD_* environment variables,
// then command-line flags, and validated once at start. It owns only the
// log and config (reload) sections and the checks that span sections.
package config

import (
	"errors"
	"fmt"
	"net/url"
	"os"
	"reflect"
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
	"github.com/heraldrt/herald/edge/edgeconf"
	"github.com/heraldrt/herald/fanout"
	"github.com/heraldrt/herald/internal/confkey"
	"github.com/heraldrt/herald/protocols"
	"github.com/heraldrt/herald/telemetry"
)

// Config is Herald's whole configuration. Keys are the koanf tags joined by
// dots (server.listen); env variables use HERALD_ and "__" for the dots
// (HERALD_SERVER__LISTEN). Each field's type belongs to the package that
// uses the section.
type Config struct {
	Server  edgeconf.Server         `koanf:"server"`
	Auth    auth.Settings           `koanf:"auth"`
	API     edgeconf.API            `koanf:"api"`
	Fanout  fanout.Config           `koanf:"fanout"`
	History fanout.HistoryConfig    `koanf:"history"`
	Stream  protocols.StreamConfig  `koanf:"stream"`
	Limits  edgeconf.Limits         `koanf:"limits"`
	Tracing telemetry.TracingConfig `koanf:"tracing"`
	Log     Log                     `koanf:"log"`
	Dev     edgeconf.Dev            `koanf:"dev"`
	Admin   edgeconf.Admin          `koanf:"admin"`
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

// Log configures logging.
type Log struct {
	// Level is debug, info, warn or error.
	Level string `koanf:"level"`
	// Format is text or json.
	Format string `koanf:"format"`
}

// Default returns the built-in defaults, the same values configs/herald.yaml
// documents.
func Default() Config {
	return Config{
		Server:  edgeconf.DefaultServer(),
		Auth:    auth.DefaultSettings(),
		Compat:  Compat{ChannelsRedis: compat.DefaultConfig()},
		API:     edgeconf.DefaultAPI(fanout.DefaultIdempotencyWindow),
		Fanout:  fanout.DefaultConfig(),
		History: fanout.DefaultHistoryConfig(),
		Stream:  protocols.DefaultStreamConfig(),
		Limits:  edgeconf.DefaultLimits(),
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

// Validate checks every value and returns all problems, each naming its
// key: each section's own Validate, then what spans sections (a "*" origin
// with cookie credentials, admin.key equal to api.key).
func (c *Config) Validate() error {
	var l confkey.List
	l.Append(c.Server.Validate())
	l.Between("config.watch_interval", c.Reload.WatchInterval, 100*time.Millisecond, time.Hour, false)
	for _, o := range c.Server.AllowedOrigins {
		if o == "*" && !c.Server.AllowAnyOriginWithCredentials {
			l.Add("server.allowed_origins", "\"*\" would let any site's page open its visitors' streams with their cookies (auth.cookie_name %q%s): list the origins, or set server.allow_any_origin_with_credentials: true", c.Auth.CookieName, map[bool]string{true: ", auth.backend_check.url", false: ""}[c.Auth.BackendCheck.URL != ""])
		}
	}
	l.Append(c.Auth.Validate())
	l.Append(c.API.Validate())
	l.Append(c.Admin.Validate())
	if c.Admin.Key != "" && c.Admin.Key == c.API.Key {
		l.Add("admin.key", "must differ from api.key")
	}
	l.Append(c.Fanout.Validate())
	l.Append(c.History.Validate())
	l.Append(c.Stream.Validate())
	l.Append(c.Limits.Validate())
	l.Append(c.Tracing.Validate())
	switch c.Log.Level {
	case "debug", "info", "warn", "error":
	default:
		l.Add("log.level", "must be debug, info, warn or error, got %q", c.Log.Level)
	}
	switch c.Log.Format {
	case "text", "json":
	default:
		l.Add("log.format", "must be text or json, got %q", c.Log.Format)
	}
	l.Append(c.Compat.ChannelsRedis.Validate())
	return l.Err()
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
