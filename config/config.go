// Package config holds ssehub's typed configuration: the Config structs and
// their defaults, Load (built-in defaults, then a YAML file, then SSEHUB_*
// environment variables, then flags) and validation. It is the only package
// that imports viper; everything else receives plain values copied from a
// Config in cmd/ssehub.
//
// The documented example, with every key, its default and a comment, is
// config/ssehub.yaml in the repository.
package config

import (
	"log/slog"
	"strings"
	"time"
)

// Config is ssehub's whole configuration. A Config is a plain value: it is
// safe to copy and to read from any number of goroutines.
type Config struct {
	Server ServerConfig
	CORS   CORSConfig
	Stream StreamConfig
	Demo   DemoConfig
	Log    LogConfig
	Hub    HubConfig
	NATS   NATSConfig
	Auth   AuthConfig
}

// ServerConfig is the `server:` section: where to listen and how long a
// graceful shutdown may take.
type ServerConfig struct {
	Addr            string        // server.addr, host:port; port 0 picks a free port
	ShutdownTimeout time.Duration // server.shutdown_timeout
	ReadTimeout     time.Duration // server.read_timeout: reading a request, body included
	TrustedProxies  []string      // server.trusted_proxies: addresses or CIDRs whose forwarding headers count
	TLS             TLSConfig     // server.tls: HTTPS, with HTTP/2
	H2C             bool          // server.h2c: cleartext HTTP/2 (prior knowledge) beside HTTP/1.1; not with TLS
}

// TLSConfig is the `server.tls:` section. Both files empty, the default,
// means plain HTTP; both set means HTTPS, with HTTP/2 offered by ALPN.
type TLSConfig struct {
	CertFile string // server.tls.cert_file: PEM certificate chain, the server's first
	KeyFile  string // server.tls.key_file: PEM private key of the first certificate
}

// Enabled reports whether the server serves HTTPS: a certificate is set.
func (t TLSConfig) Enabled() bool {
	return t.CertFile != "" || t.KeyFile != ""
}

// CORSConfig is the `cors:` section. An empty AllowedOrigins means
// same-origin only: no CORS headers are sent at all.
type CORSConfig struct {
	AllowedOrigins   []string      // cors.allowed_origins: exact origins, one-label wildcards, or "*"
	AllowCredentials bool          // cors.allow_credentials
	AllowedHeaders   []string      // cors.allowed_headers
	ExposedHeaders   []string      // cors.exposed_headers
	MaxAge           time.Duration // cors.max_age, sent in whole seconds
}

// StreamConfig is the `stream:` section, shared by every SSE stream.
type StreamConfig struct {
	HeartbeatInterval time.Duration // stream.heartbeat_interval
	Retry             time.Duration // stream.retry, sent as the retry: field
	WriteTimeout      time.Duration // stream.write_timeout, per write
	Transport         string        // stream.transport: gin or detached
	MaxStreams        int           // stream.max_streams: open streams of every kind
}

// DemoConfig is the `demo:` section: the demo page and the ticker stream.
type DemoConfig struct {
	Enabled        bool          // demo.enabled: the page, /stream, and the hub's demo.> open to all
	TickerCount    int           // demo.ticker_count
	TickerInterval time.Duration // demo.ticker_interval
	MaxDuration    time.Duration // demo.max_duration: the longest demo stream
	MaxTokens      int           // demo.max_tokens: words of one POST /stream
}

// LogConfig is the `log:` section.
type LogConfig struct {
	Level  string // log.level: debug, info, warn or error
	Format string // log.format: text or json
}

// HubConfig is the `hub:` section: the pub/sub hub's broker and bounds.
type HubConfig struct {
	Broker                   string // hub.broker: memory, or nats (JetStream, see NATSConfig)
	HistorySize              int    // hub.history_size, events kept for replay
	HistoryMaxBytes          int    // hub.history_max_bytes, bytes of frames kept for replay
	HistoryGCPacing          bool   // hub.history_gc_pacing: keep the history out of the GC's headroom
	SubscriberBuffer         int    // hub.subscriber_buffer, events queued per subscriber
	MaxSubscribers           int    // hub.max_subscribers
	MaxEventBytes            int    // hub.max_event_bytes, publish body cap
	MaxTopicsPerSubscription int    // hub.max_topics_per_subscription
}

// NATSConfig is the `nats:` section: the NATS JetStream broker's
// connection and stream, used when hub.broker is nats.
type NATSConfig struct {
	URL             []string // nats.url: servers to connect to, one or more (a cluster)
	CredentialsFile string   // nats.credentials_file: a .creds file; empty: none
	CAFile          string   // nats.ca_file: PEM CAs the servers' TLS certificates are checked against; empty: the system's
	Stream          string   // nats.stream: the JetStream stream's name
	SubjectPrefix   string   // nats.subject_prefix: topic orders.eu is subject <prefix>.orders.eu
	Replicas        int      // nats.replicas: copies of the stream in a cluster, 1-5
	Storage         string   // nats.storage: file or memory
	PublishBatching bool     // nats.publish_batching: publish from one goroutine per instance
	Embedded        bool     // nats.embedded: run a NATS server inside the process
	StoreDir        string   // nats.store_dir: the embedded server's JetStream store
}

// AuthConfig is the `auth:` section: static bearer tokens and JSON Web
// Tokens. With neither a publish token nor a JWT key, publishing is off;
// with neither a subscribe token nor a JWT key, subscribing is open. With
// demo.enabled, topics under demo.> need none.
type AuthConfig struct {
	PublishTokens   []string  // auth.publish_tokens
	SubscribeTokens []string  // auth.subscribe_tokens
	JWT             JWTConfig // auth.jwt
}

// JWTConfig is the `auth.jwt:` section: the keys JSON Web Tokens are
// verified with and the claims they must carry. With neither key set,
// JWTs are off.
type JWTConfig struct {
	HMACSecret    string        // auth.jwt.hmac_secret: HS256/384/512 tokens; empty: none
	PublicKeyFile string        // auth.jwt.public_key_file: PEM public key for RS*, PS*, ES*, EdDSA; empty: none
	Algorithms    []string      // auth.jwt.algorithms: accepted; empty: every one the keys fit
	Issuer        string        // auth.jwt.issuer: the iss claim required; empty: not checked
	Audience      string        // auth.jwt.audience: a value the aud claim must hold; empty: not checked
	Leeway        time.Duration // auth.jwt.leeway: clock skew allowed on exp, nbf and iat
	MaxLifetime   time.Duration // auth.jwt.max_lifetime: the longest from a token's iat to its exp; 0: no limit
	CookieName    string        // auth.jwt.cookie_name: the cookie a token may come in
}

// Enabled reports whether JWTs are accepted: a key is configured.
func (j JWTConfig) Enabled() bool {
	return j.HMACSecret != "" || j.PublicKeyFile != ""
}

// Default returns the built-in defaults. They equal the values written in
// config/ssehub.yaml, which a test keeps true. Empty lists are non-nil.
func Default() Config {
	return Config{
		Server: ServerConfig{
			Addr:            ":8111",
			ShutdownTimeout: 10 * time.Second,
			ReadTimeout:     10 * time.Second,
			TrustedProxies:  []string{},
			TLS:             TLSConfig{CertFile: "", KeyFile: ""},
			H2C:             false,
		},
		CORS: CORSConfig{
			AllowedOrigins:   []string{},
			AllowCredentials: false,
			AllowedHeaders:   []string{"Content-Type", "Authorization", "Last-Event-ID", "Cache-Control", "Idempotency-Key"},
			ExposedHeaders:   []string{"Idempotent-Replayed", "Retry-After", "WWW-Authenticate"},
			MaxAge:           12 * time.Hour,
		},
		Stream: StreamConfig{
			HeartbeatInterval: 15 * time.Second,
			Retry:             3 * time.Second,
			WriteTimeout:      10 * time.Second,
			Transport:         "gin",
			MaxStreams:        20000,
		},
		Demo: DemoConfig{
			Enabled:        true,
			TickerCount:    10,
			TickerInterval: time.Second,
			MaxDuration:    10 * time.Minute,
			MaxTokens:      2000,
		},
		Log: LogConfig{
			Level:  "info",
			Format: "text",
		},
		Hub: HubConfig{
			Broker:                   "memory",
			HistorySize:              10000,
			HistoryMaxBytes:          64 << 20,
			HistoryGCPacing:          true,
			SubscriberBuffer:         256,
			MaxSubscribers:           20000,
			MaxEventBytes:            65536,
			MaxTopicsPerSubscription: 32,
		},
		NATS: NATSConfig{
			URL:             []string{"nats://127.0.0.1:4222"},
			CredentialsFile: "",
			CAFile:          "",
			Stream:          "SSEHUB",
			SubjectPrefix:   "ssehub",
			Replicas:        1,
			Storage:         "file",
			PublishBatching: true,
			Embedded:        false,
			StoreDir:        "data/nats",
		},
		Auth: AuthConfig{
			PublishTokens:   []string{},
			SubscribeTokens: []string{},
			JWT: JWTConfig{
				HMACSecret:    "",
				PublicKeyFile: "",
				Algorithms:    []string{},
				Issuer:        "",
				Audience:      "",
				Leeway:        30 * time.Second,
				MaxLifetime:   0,
				CookieName:    "ssehub_token",
			},
		},
	}
}

// SlogLevel returns Level as a slog.Level. Level is matched without regard
// to case; a value Validate would reject yields slog.LevelInfo.
func (l LogConfig) SlogLevel() slog.Level {
	switch strings.ToLower(l.Level) {
	case "debug":
		return slog.LevelDebug
	case "warn":
		return slog.LevelWarn
	case "error":
		return slog.LevelError
	default:
		return slog.LevelInfo
	}
}

// Detached reports whether stream.transport is detached, matched without
// regard to case.
func (s StreamConfig) Detached() bool {
	return strings.EqualFold(s.Transport, "detached")
}

// NATS reports whether hub.broker is nats, matched without regard to case.
func (h HubConfig) NATS() bool {
	return strings.EqualFold(h.Broker, "nats")
}

// MemoryStorage reports whether nats.storage is memory, matched without
// regard to case.
func (n NATSConfig) MemoryStorage() bool {
	return strings.EqualFold(n.Storage, "memory")
}

// JSON reports whether log lines should be written as JSON rather than text.
func (l LogConfig) JSON() bool {
	return strings.EqualFold(l.Format, "json")
}
