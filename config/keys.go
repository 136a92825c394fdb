package config

import (
	"slices"
	"strings"
	"time"
)

// field ties one dotted key to the Config field it sets. target is a
// pointer: *string, *bool, *int, *time.Duration or *[]string.
type field struct {
	key    string
	target any
}

// fields lists every key, in the order of config/ssehub.yaml, with a
// pointer into c. A test checks that it covers every field of Config.
func (c *Config) fields() []field {
	return []field{
		{"server.addr", &c.Server.Addr},
		{"server.shutdown_timeout", &c.Server.ShutdownTimeout},
		{"server.read_timeout", &c.Server.ReadTimeout},
		{"server.trusted_proxies", &c.Server.TrustedProxies},
		{"server.tls.cert_file", &c.Server.TLS.CertFile},
		{"server.tls.key_file", &c.Server.TLS.KeyFile},
		{"server.h2c", &c.Server.H2C},
		{"cors.allowed_origins", &c.CORS.AllowedOrigins},
		{"cors.allow_credentials", &c.CORS.AllowCredentials},
		{"cors.allowed_headers", &c.CORS.AllowedHeaders},
		{"cors.exposed_headers", &c.CORS.ExposedHeaders},
		{"cors.max_age", &c.CORS.MaxAge},
		{"stream.heartbeat_interval", &c.Stream.HeartbeatInterval},
		{"stream.retry", &c.Stream.Retry},
		{"stream.write_timeout", &c.Stream.WriteTimeout},
		{"stream.transport", &c.Stream.Transport},
		{"stream.max_streams", &c.Stream.MaxStreams},
		{"demo.enabled", &c.Demo.Enabled},
		{"demo.ticker_count", &c.Demo.TickerCount},
		{"demo.ticker_interval", &c.Demo.TickerInterval},
		{"demo.max_duration", &c.Demo.MaxDuration},
		{"demo.max_tokens", &c.Demo.MaxTokens},
		{"log.level", &c.Log.Level},
		{"log.format", &c.Log.Format},
		{"hub.broker", &c.Hub.Broker},
		{"hub.history_size", &c.Hub.HistorySize},
		{"hub.history_max_bytes", &c.Hub.HistoryMaxBytes},
		{"hub.history_gc_pacing", &c.Hub.HistoryGCPacing},
		{"hub.subscriber_buffer", &c.Hub.SubscriberBuffer},
		{"hub.max_subscribers", &c.Hub.MaxSubscribers},
		{"hub.max_event_bytes", &c.Hub.MaxEventBytes},
		{"hub.max_topics_per_subscription", &c.Hub.MaxTopicsPerSubscription},
		{"nats.url", &c.NATS.URL},
		{"nats.credentials_file", &c.NATS.CredentialsFile},
		{"nats.ca_file", &c.NATS.CAFile},
		{"nats.stream", &c.NATS.Stream},
		{"nats.subject_prefix", &c.NATS.SubjectPrefix},
		{"nats.replicas", &c.NATS.Replicas},
		{"nats.storage", &c.NATS.Storage},
		{"nats.publish_batching", &c.NATS.PublishBatching},
		{"nats.embedded", &c.NATS.Embedded},
		{"nats.store_dir", &c.NATS.StoreDir},
		{"auth.publish_tokens", &c.Auth.PublishTokens},
		{"auth.subscribe_tokens", &c.Auth.SubscribeTokens},
		{"auth.jwt.hmac_secret", &c.Auth.JWT.HMACSecret},
		{"auth.jwt.public_key_file", &c.Auth.JWT.PublicKeyFile},
		{"auth.jwt.algorithms", &c.Auth.JWT.Algorithms},
		{"auth.jwt.issuer", &c.Auth.JWT.Issuer},
		{"auth.jwt.audience", &c.Auth.JWT.Audience},
		{"auth.jwt.leeway", &c.Auth.JWT.Leeway},
		{"auth.jwt.max_lifetime", &c.Auth.JWT.MaxLifetime},
		{"auth.jwt.cookie_name", &c.Auth.JWT.CookieName},
	}
}

// Keys returns every configuration key, dotted (e.g. "stream.retry"), in
// the order of config/ssehub.yaml.
func Keys() []string {
	var c Config
	fs := c.fields()
	keys := make([]string, len(fs))
	for i, f := range fs {
		keys[i] = f.key
	}
	return keys
}

// EnvName returns the environment variable that sets key: "SSEHUB_" and the
// key in upper snake case, so "server.addr" becomes "SSEHUB_SERVER_ADDR".
func EnvName(key string) string {
	return "SSEHUB_" + strings.ToUpper(strings.ReplaceAll(key, ".", "_"))
}

// sections returns every section, top-level ("server") or nested
// ("server.tls"), and, for each, the names directly under it, in the order
// of config/ssehub.yaml.
func sections() map[string][]string {
	m := map[string][]string{}
	for _, k := range Keys() {
		parts := strings.Split(k, ".")
		for i := 1; i < len(parts); i++ {
			sec := strings.Join(parts[:i], ".")
			if !slices.Contains(m[sec], parts[i]) {
				m[sec] = append(m[sec], parts[i])
			}
		}
	}
	return m
}

// sectionOf returns the innermost known section that key lies in, or ""
// when none does.
func sectionOf(key string, secs map[string][]string) string {
	for sec := key; ; {
		i := strings.LastIndexByte(sec, '.')
		if i < 0 {
			return ""
		}
		if sec = sec[:i]; secs[sec] != nil {
			return sec
		}
	}
}

// kindOf names the type a key expects, for error messages.
func kindOf(target any) string {
	switch target.(type) {
	case *string:
		return "string"
	case *bool:
		return "bool"
	case *int:
		return "integer"
	case *time.Duration:
		return "duration"
	case *[]string:
		return "list"
	}
	return "value"
}
