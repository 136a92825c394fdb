package config

import (
	"errors"
	"strings"
	"testing"
	"time"
)

func TestValidateRejects(t *testing.T) {
	publicKey, _ := writeTLSPair(t) // a certificate holds a public key
	tests := []struct {
		name   string
		mutate func(*Config)
		want   string
	}{
		{"addr without port", func(c *Config) { c.Server.Addr = "localhost" }, `server.addr: "localhost" is not host:port`},
		{"addr port too big", func(c *Config) { c.Server.Addr = ":70000" }, `server.addr: ":70000" is not host:port`},
		{"addr named port", func(c *Config) { c.Server.Addr = ":http" }, `server.addr: ":http" is not host:port`},
		{"shutdown zero", func(c *Config) { c.Server.ShutdownTimeout = 0 }, `server.shutdown_timeout: "0s" must be greater than 0s`},
		{"heartbeat zero", func(c *Config) { c.Stream.HeartbeatInterval = 0 }, `stream.heartbeat_interval: "0s" must be between 1s and 24h0m0s`},
		// 1ns sent one idle stream 8.6 MB of heartbeats in 3 s; 15ms, a
		// typo for 15s, 129 heartbeats in 2 s.
		{"heartbeat 1ns", func(c *Config) { c.Stream.HeartbeatInterval = 1 }, `stream.heartbeat_interval: "1ns" must be between 1s and 24h0m0s`},
		{"heartbeat 15ms", func(c *Config) { c.Stream.HeartbeatInterval = 15 * time.Millisecond }, `stream.heartbeat_interval: "15ms" must be between 1s and 24h0m0s`},
		{"heartbeat over a day", func(c *Config) { c.Stream.HeartbeatInterval = 25 * time.Hour }, `stream.heartbeat_interval: "25h0m0s" must be between 1s and 24h0m0s`},
		{"retry negative", func(c *Config) { c.Stream.Retry = -time.Second }, `stream.retry: "-1s" must be between 0s and 24h0m0s`},
		{"retry over a day", func(c *Config) { c.Stream.Retry = 720 * time.Hour }, `stream.retry: "720h0m0s" must be between 0s and 24h0m0s`},
		{"write timeout zero", func(c *Config) { c.Stream.WriteTimeout = 0 }, `stream.write_timeout: "0s" must be between 1s and 24h0m0s`},
		// It is also TCP_USER_TIMEOUT, which Linux enforces from the first
		// unacknowledged byte: 10ms, a typo for 10s, would end the
		// connection of every client more than 10ms away at its first write.
		{"write timeout 10ms", func(c *Config) { c.Stream.WriteTimeout = 10 * time.Millisecond }, `stream.write_timeout: "10ms" must be between 1s and 24h0m0s`},
		{"write timeout under a second", func(c *Config) { c.Stream.WriteTimeout = 999 * time.Millisecond }, `stream.write_timeout: "999ms" must be between 1s and 24h0m0s`},
		// It is also TCP_USER_TIMEOUT, in milliseconds of a C int: 600h
		// made the listener fail with "invalid argument" under server.addr.
		{"write timeout over a day", func(c *Config) { c.Stream.WriteTimeout = 600 * time.Hour }, `stream.write_timeout: "600h0m0s" must be between 1s and 24h0m0s`},
		{"max age negative", func(c *Config) { c.CORS.MaxAge = -time.Second }, `cors.max_age: "-1s" must not be less`},
		// Sent in whole seconds, 500ms was Access-Control-Max-Age: 0, which
		// bars caching a preflight, where 0s sends none (the browser's
		// default, 5s).
		{"max age below a second", func(c *Config) { c.CORS.MaxAge = 500 * time.Millisecond }, `cors.max_age: "500ms" is sent in whole seconds, as 0`},
		{"ticker interval long", func(c *Config) { c.Demo.TickerInterval = 61 * time.Second }, `demo.ticker_interval: "1m1s" must be between 0s and 1m0s`},
		{"ticker interval negative", func(c *Config) { c.Demo.TickerInterval = -1 }, `demo.ticker_interval: "-1ns" must be between`},
		{"ticker count zero", func(c *Config) { c.Demo.TickerCount = 0 }, `demo.ticker_count: 0 must be between 1 and 10000`},
		{"ticker count big", func(c *Config) { c.Demo.TickerCount = 10001 }, `demo.ticker_count: 10001 must be between 1 and 10000`},
		{"log level", func(c *Config) { c.Log.Level = "verbose" }, `log.level: "verbose" must be one of debug, info, warn, error`},
		{"log format", func(c *Config) { c.Log.Format = "xml" }, `log.format: "xml" must be one of text, json`},
		{"stream transport", func(c *Config) { c.Stream.Transport = "hijack" }, `stream.transport: "hijack" must be one of gin, detached`},
		{"read timeout zero", func(c *Config) { c.Server.ReadTimeout = 0 }, `server.read_timeout: "0s" must be at least 1s`},
		// A typo for 10s: a request must arrive whole within it, and the
		// TLS handshake too (net/http's handshake timeout), a round trip:
		// HTTPS clients a few milliseconds away were cut off, while a
		// health check over loopback still passed.
		{"read timeout 10ms", func(c *Config) { c.Server.ReadTimeout = 10 * time.Millisecond }, `server.read_timeout: "10ms" must be at least 1s`},
		{"trusted proxy name", func(c *Config) { c.Server.TrustedProxies = []string{"10.0.0.0/8", "nginx"} }, `server.trusted_proxies: "nginx" is neither an IP address nor a CIDR`},
		// Gin made "::ffff:10.0.0.1" the IPv6 network ::/32: the proxy
		// 10.0.0.1 was not trusted, and clients at ::1 could name any
		// client in X-Forwarded-For.
		{"trusted proxy IPv4-mapped", func(c *Config) { c.Server.TrustedProxies = []string{"::ffff:10.0.0.1"} }, `server.trusted_proxies: "::ffff:10.0.0.1" is an IPv4 address written as IPv6: write it as 10.0.0.1`},
		{"trusted proxy IPv4-mapped CIDR", func(c *Config) { c.Server.TrustedProxies = []string{"::FFFF:10.0.0.0/104"} }, `server.trusted_proxies: "::FFFF:10.0.0.0/104" is an IPv4 address written as IPv6: write it as 10.0.0.0/8`},
		{"trusted proxy with a zone", func(c *Config) { c.Server.TrustedProxies = []string{"fe80::1%eth0"} }, `server.trusted_proxies: "fe80::1%eth0" is neither`},
		{"max streams zero", func(c *Config) { c.Stream.MaxStreams = 0 }, `stream.max_streams: 0 must be at least 1`},
		{"subscribers above streams", func(c *Config) { c.Stream.MaxStreams = 10 }, `hub.max_subscribers: 20000 is above stream.max_streams (10)`},
		{"demo duration zero", func(c *Config) { c.Demo.MaxDuration = 0 }, `demo.max_duration: "0s" must be greater than 0s`},
		{"default ticker beyond demo duration", func(c *Config) { c.Demo.TickerCount = 1000 }, `demo.ticker_count: 1000 × demo.ticker_interval 1s = 16m40s is above demo.max_duration (10m0s): GET /stream without a query would be refused`},
		{"demo duration below default ticker", func(c *Config) { c.Demo.MaxDuration = 5 * time.Second }, `demo.ticker_count: 10 × demo.ticker_interval 1s = 10s is above demo.max_duration (5s)`},
		{"demo tokens zero", func(c *Config) { c.Demo.MaxTokens = 0 }, `demo.max_tokens: 0 must be at least 1`},
		{"history bytes below an event", func(c *Config) { c.Hub.HistoryMaxBytes = 1000 }, `hub.history_max_bytes: 1000 is below hub.max_event_bytes (65536)`},
		{"origin path", func(c *Config) { c.CORS.AllowedOrigins = []string{"http://a/b"} }, `cors.allowed_origins: "http://a/b" is not an origin`},
		{"origin trailing slash", func(c *Config) { c.CORS.AllowedOrigins = []string{"http://a.test/"} }, `cors.allowed_origins: "http://a.test/" is not an origin`},
		{"origin query", func(c *Config) { c.CORS.AllowedOrigins = []string{"http://a.test?x=1"} }, `cors.allowed_origins: "http://a.test?x=1" is not an origin`},
		{"origin fragment", func(c *Config) { c.CORS.AllowedOrigins = []string{"http://a.test#x"} }, `cors.allowed_origins: "http://a.test#x" is not an origin`},
		{"origin userinfo", func(c *Config) { c.CORS.AllowedOrigins = []string{"http://u:p@a.test"} }, `cors.allowed_origins: "http://u:p@a.test" is not an origin (no userinfo`},
		{"origin scheme", func(c *Config) { c.CORS.AllowedOrigins = []string{"ftp://a.test"} }, `cors.allowed_origins: "ftp://a.test" is not an origin (scheme`},
		{"origin no scheme", func(c *Config) { c.CORS.AllowedOrigins = []string{"a.test"} }, `cors.allowed_origins: "a.test" is not an origin`},
		{"origin no host", func(c *Config) { c.CORS.AllowedOrigins = []string{"http://"} }, `cors.allowed_origins: "http://" is not an origin`},
		{"origin port zero", func(c *Config) { c.CORS.AllowedOrigins = []string{"http://a.test:0"} }, `cors.allowed_origins: "http://a.test:0" is not an origin (port`},
		{"origin empty port", func(c *Config) { c.CORS.AllowedOrigins = []string{"http://a.test:"} }, `cors.allowed_origins: "http://a.test:" is not an origin (port`},
		{"origin wildcard inside", func(c *Config) { c.CORS.AllowedOrigins = []string{"https://a.*.test"} }, `cors.allowed_origins: "https://a.*.test" is not an origin (a wildcard`},
		{"origin wildcard partial", func(c *Config) { c.CORS.AllowedOrigins = []string{"https://a*.test"} }, `cors.allowed_origins: "https://a*.test" is not an origin (a wildcard`},
		{"origin wildcard alone", func(c *Config) { c.CORS.AllowedOrigins = []string{"https://*"} }, `cors.allowed_origins: "https://*" is not an origin (a wildcard`},
		{"origin bad host", func(c *Config) { c.CORS.AllowedOrigins = []string{"http://a..test"} }, `cors.allowed_origins: "http://a..test" is not an origin (bad host)`},
		// Browsers send an IPv4 address as four decimal numbers: one
		// written otherwise would never match, and the last label of a
		// host name is never a number.
		{"origin ipv4 leading zero", func(c *Config) { c.CORS.AllowedOrigins = []string{"http://127.000.0.1"} }, `cors.allowed_origins: "http://127.000.0.1" is not an origin (an IPv4 address is four decimal numbers`},
		{"origin ipv4 one number", func(c *Config) { c.CORS.AllowedOrigins = []string{"http://2130706433"} }, `cors.allowed_origins: "http://2130706433" is not an origin (an IPv4 address is four decimal numbers`},
		{"origin ipv4 hex", func(c *Config) { c.CORS.AllowedOrigins = []string{"http://a.0x7f"} }, `cors.allowed_origins: "http://a.0x7f" is not an origin (an IPv4 address is four decimal numbers`},
		{"origin wildcard ipv4", func(c *Config) { c.CORS.AllowedOrigins = []string{"http://*.0.0.1"} }, `cors.allowed_origins: "http://*.0.0.1" is not an origin (a wildcard`},
		{"origin ipv6 zone", func(c *Config) { c.CORS.AllowedOrigins = []string{"http://[fe80::1%25eth0]"} }, `cors.allowed_origins: "http://[fe80::1%25eth0]" is not an origin (bad host)`},
		// Only a shell expands ~: nats.store_dir: ~/nats made a directory
		// named ~ in the working directory.
		{"store dir under ~", func(c *Config) { c.Hub.Broker, c.NATS.Embedded, c.NATS.StoreDir = "nats", true, "~/nats" }, `nats.store_dir: "~/nats": starts with ~, which only a shell expands: write the full path`},
		{"cert file under ~", func(c *Config) { c.Server.TLS.CertFile, c.Server.TLS.KeyFile = "~/tls/cert.pem", "~/tls/key.pem" }, `server.tls.cert_file: "~/tls/cert.pem": starts with ~, which only a shell expands`},
		{"jwt key under ~", func(c *Config) { c.Auth.JWT.PublicKeyFile = "~user/jwt.pem" }, `auth.jwt.public_key_file: "~user/jwt.pem": starts with ~, which only a shell expands`},
		{"wildcard over a public suffix with credentials", func(c *Config) {
			c.CORS.AllowedOrigins, c.CORS.AllowCredentials = []string{"https://*.com"}, true
		}, `cors.allowed_origins: "https://*.com" allows every site under a public suffix, anyone's`},
		{"wildcard over a two-label public suffix with credentials", func(c *Config) {
			c.CORS.AllowedOrigins, c.CORS.AllowCredentials = []string{"https://*.co.uk"}, true
		}, `cors.allowed_origins: "https://*.co.uk" allows every site under a public suffix`},
		{"wildcard over a hosting provider with credentials", func(c *Config) {
			c.CORS.AllowedOrigins, c.CORS.AllowCredentials = []string{"http://localhost:5173", "https://*.github.io"}, true
		}, `cors.allowed_origins: "https://*.github.io" allows every site under a public suffix`},
		{"origin international name", func(c *Config) { c.CORS.AllowedOrigins = []string{"https://bücher.example"} }, `cors.allowed_origins: "https://bücher.example" is not an origin (an international domain name is written in its ASCII form, xn--..., as browsers send it)`},
		{"origin space", func(c *Config) { c.CORS.AllowedOrigins = []string{"http://a.test "} }, `cors.allowed_origins: "http://a.test " is not an origin`},
		{"star with credentials", func(c *Config) {
			c.CORS.AllowedOrigins = []string{"*"}
			c.CORS.AllowCredentials = true
		}, `cors.allowed_origins: "*" cannot be combined with cors.allow_credentials: true`},
		// With credentials, browsers take "*" in these headers as a header
		// named "*": a page could read, or send, none through it.
		{"exposed star with credentials", func(c *Config) {
			c.CORS.ExposedHeaders = []string{"Retry-After", "*"}
			c.CORS.AllowCredentials = true
		}, `cors.exposed_headers: "*" means no header with cors.allow_credentials: true`},
		{"allowed star with credentials", func(c *Config) {
			c.CORS.AllowedHeaders = []string{"*"}
			c.CORS.AllowCredentials = true
		}, `cors.allowed_headers: "*" means no header with cors.allow_credentials: true`},
		{"header with space", func(c *Config) { c.CORS.AllowedHeaders = []string{"Content Type"} }, `cors.allowed_headers: "Content Type" is not a header name`},
		{"exposed header empty", func(c *Config) { c.CORS.ExposedHeaders = []string{""} }, `cors.exposed_headers: "" is not a header name`},
		{"history zero", func(c *Config) { c.Hub.HistorySize = 0 }, `hub.history_size: 0 must be between 1 and 10000000`},
		// The ring is allocated at start: 99999999999 slots crashed it
		// out of memory.
		{"history huge", func(c *Config) { c.Hub.HistorySize = 99999999999 }, `hub.history_size: 99999999999 must be between 1 and 10000000 (its ring is allocated at start, 32 bytes a slot: 320 MB at most)`},
		{"buffer negative", func(c *Config) { c.Hub.SubscriberBuffer = -1 }, `hub.subscriber_buffer: -1 must be at least 1`},
		{"max subscribers zero", func(c *Config) { c.Hub.MaxSubscribers = 0 }, `hub.max_subscribers: 0 must be at least 1`},
		{"event bytes zero", func(c *Config) { c.Hub.MaxEventBytes = 0 }, `hub.max_event_bytes: 0 must be between 1 and 16777216`},
		{"event bytes big", func(c *Config) { c.Hub.MaxEventBytes = 16<<20 + 1 }, `hub.max_event_bytes: 16777217 must be between 1 and 16777216`},
		{"topics zero", func(c *Config) { c.Hub.MaxTopicsPerSubscription = 0 }, `hub.max_topics_per_subscription: 0 must be at least 1`},
		{"broker", func(c *Config) { c.Hub.Broker = "redis" }, `hub.broker: "redis" must be one of memory, nats`},
		{"nats url none", onNATS(func(c *Config) { c.NATS.URL = []string{} }), `nats.url: no server`},
		{"nats url no scheme", onNATS(func(c *Config) { c.NATS.URL = []string{"127.0.0.1:4222"} }), `nats.url: "127.0.0.1:4222" is not a NATS server URL (no scheme`},
		{"nats url http", onNATS(func(c *Config) { c.NATS.URL = []string{"http://n.test:4222"} }), `nats.url: "http://n.test:4222" is not a NATS server URL (scheme must be one of nats, tls, ws, wss)`},
		{"nats url second bad", onNATS(func(c *Config) { c.NATS.URL = []string{"nats://a.test", "nats://"} }), `nats.url: "nats://" is not a NATS server URL (no host)`},
		{"nats url path", onNATS(func(c *Config) { c.NATS.URL = []string{"nats://a.test:4222/x"} }), `nats.url: "nats://a.test:4222/x" is not a NATS server URL (nothing may follow host:port; only a ws or wss URL has a path and a query)`},
		{"nats url ws fragment", onNATS(func(c *Config) { c.NATS.URL = []string{"wss://a.test/nats#x"} }), `nats.url: "wss://a.test/nats#x" is not a NATS server URL (nothing but a path and a query may follow host:port)`},
		{"nats url query", onNATS(func(c *Config) { c.NATS.URL = []string{"tls://a.test:4222?x=1"} }), `nats.url: "tls://a.test:4222?x=1" is not a NATS server URL (nothing may follow host:port`},
		// nats.go takes its servers as one text, split on commas: a
		// comma in a list item's query or password made two bad URLs.
		{"nats url two servers in one item", onNATS(func(c *Config) { c.NATS.URL = []string{"nats://a.test:4222,nats://b.test:4222"} }), `nats.url: "nats://a.test:4222,nats://b.test:4222" is not a NATS server URL (contains a comma, which separates servers: list each server as an item of its own`},
		// Several servers in one item, as a comma-separated scalar inside
		// a YAML list, or with another separator: each one's secret is
		// hidden, and the item is shown as written.
		{"nats url two servers in one item, secrets hidden", onNATS(func(c *Config) {
			c.NATS.URL = []string{"nats://u:s3cret@a.test:4222,nats://t0ken@b.test:4222"}
		}), `nats.url: "nats://u:xxxxx@a.test:4222,nats://xxxxx@b.test:4222" is not a NATS server URL (contains a comma`},
		{"nats url two servers apart by a space, secrets hidden", onNATS(func(c *Config) {
			c.NATS.URL = []string{"nats://u:s3cret@a.test:4222 nats://t0ken@b.test:4222"}
		}), `nats.url: "nats://u:xxxxx@a.test:4222 nats://xxxxx@b.test:4222" is not a NATS server URL (contains white space)`},
		{"nats url two ws servers, secrets hidden", onNATS(func(c *Config) {
			c.NATS.URL = []string{"wss://a.test/nats?token=s3cret;wss://u:t0ken@b.test"}
		}), `nats.url: "wss://a.test/nats?token=xxxxx;wss://u:xxxxx@b.test" is not a NATS server URL`},
		{"nats url ws query comma", onNATS(func(c *Config) { c.NATS.URL = []string{"ws://e.test:8080/nats?regions=eu,us"} }), `nats.url: "ws://e.test:8080/nats?regions=eu,us" is not a NATS server URL (contains a comma, which separates servers: list each server as an item of its own, and write a comma within a URL as %2C)`},
		{"nats url password comma hidden", onNATS(func(c *Config) { c.NATS.URL = []string{"nats://u:se,cret@a.test"} }), `nats.url: "nats://u:xxxxx@a.test" is not a NATS server URL (contains a comma`},
		// nats.go refuses a list that mixes them, once the config passed.
		{"nats url ws mixed with nats", onNATS(func(c *Config) { c.NATS.URL = []string{"nats://a.test:4222", "tls://b.test", "wss://c.test/nats"} }), `nats.url: "wss://c.test/nats" is a WebSocket URL among nats or tls ones ("nats://a.test:4222"): the NATS client takes one kind or the other`},
		{"nats url nats mixed with ws", onNATS(func(c *Config) { c.NATS.URL = []string{"WS://a.test", "nats://u:secret@b.test"} }), `nats.url: "nats://u:xxxxx@b.test" is a nats or tls URL among WebSocket ones ("WS://a.test"): the NATS client takes one kind or the other`},
		{"nats url port", onNATS(func(c *Config) { c.NATS.URL = []string{"nats://a.test:70000"} }), `nats.url: "nats://a.test:70000" is not a NATS server URL (port must be 1-65535)`},
		{"nats url port zero", onNATS(func(c *Config) { c.NATS.URL = []string{"nats://a.test:0"} }), `nats.url: "nats://a.test:0" is not a NATS server URL (port`},
		{"nats url blank", onNATS(func(c *Config) { c.NATS.URL = []string{" "} }), `nats.url: " " is not a NATS server URL (contains white space)`},
		{"nats url bad port", onNATS(func(c *Config) { c.NATS.URL = []string{"nats://a.test:42x2"} }), `nats.url: "nats://a.test:42x2" is not a NATS server URL (does not parse)`},
		{"nats url password hidden, unparsable", onNATS(func(c *Config) { c.NATS.URL = []string{"nats://u:se cret@a.test"} }), `nats.url: "nats://u:xxxxx@a.test" is not a NATS server URL (contains white space)`},
		{"nats url password hidden", onNATS(func(c *Config) { c.NATS.URL = []string{"nats://u:secret@a.test:4222/x"} }), `nats.url: "nats://u:xxxxx@a.test:4222/x" is not`},
		// A user name without a password is a token to NATS: a secret.
		{"nats url token hidden", onNATS(func(c *Config) { c.NATS.URL = []string{"nats://s3cret@a.test:42x2"} }), `nats.url: "nats://xxxxx@a.test:42x2" is not a NATS server URL (does not parse)`},
		// Without its scheme the user info is still a secret.
		{"nats url token hidden, no scheme", onNATS(func(c *Config) { c.NATS.URL = []string{"s3cret@a.test:4222"} }), `nats.url: "xxxxx@a.test:4222" is not a NATS server URL (no scheme`},
		{"nats url password hidden, no scheme", onNATS(func(c *Config) { c.NATS.URL = []string{"u:secret@a.test:4222"} }), `nats.url: "u:xxxxx@a.test:4222" is not a NATS server URL (no scheme`},
		{"nats url password hidden, one slash", onNATS(func(c *Config) { c.NATS.URL = []string{"nats:/u:secret@a.test:4222"} }), `nats.url: "nats:/u:xxxxx@a.test:4222" is not a NATS server URL (no scheme`},
		// A slash in a password or token (base64's alphabet has one) ends
		// the authority early, to a URL parser.
		{"nats url password with slash hidden", onNATS(func(c *Config) { c.NATS.URL = []string{"nats://u:se/cret@a.test"} }), `nats.url: "nats://u:xxxxx@a.test" is not a NATS server URL`},
		{"nats url token with slash hidden", onNATS(func(c *Config) { c.NATS.URL = []string{"nats://s3c/ret@a.test:4222"} }), `nats.url: "nats://xxxxx@a.test:4222" is not a NATS server URL`},
		// A ws URL may have a path: with such a slash, the user info
		// parsed as the host and a path, and the client looked the
		// token up as a host name, naming it in its error.
		{"nats url ws token with slash hidden", onNATS(func(c *Config) { c.NATS.URL = []string{"ws://s3c/ret@a.test:4222"} }), `nats.url: "ws://xxxxx@a.test:4222" is not a NATS server URL (an @ after the host`},
		{"nats url wss password with slash hidden", onNATS(func(c *Config) { c.NATS.URL = []string{"wss://u:99/cret@a.test"} }), `nats.url: "wss://u:xxxxx@a.test" is not a NATS server URL (an @ after the host`},
		{"nats url wss password with @ hidden", onNATS(func(c *Config) { c.NATS.URL = []string{"wss://u:se@a/cret@a.test"} }), `nats.url: "wss://u:xxxxx@a.test" is not a NATS server URL (an @ after the host`},
		// A proxy in front of NATS may take a token in the query.
		{"nats url ws query hidden, mixed", onNATS(func(c *Config) { c.NATS.URL = []string{"wss://a.test/nats?region=eu&token=s3cret", "nats://b.test"} }), `nats.url: "nats://b.test" is a nats or tls URL among WebSocket ones ("wss://a.test/nats?region=eu&token=xxxxx")`},
		{"nats url ws query hidden", onNATS(func(c *Config) { c.NATS.URL = []string{"wss://a.test:42x2/nats?Access_Token=s3cret&x=1"} }), `nats.url: "wss://a.test:42x2/nats?Access_Token=xxxxx&x=1" is not a NATS server URL (does not parse)`},
		{"nats url ws bare query hidden", onNATS(func(c *Config) { c.NATS.URL = []string{"wss://a.test:42x2/nats?s3cret&pw=s3cret&x=1"} }), `nats.url: "wss://a.test:42x2/nats?xxxxx&pw=xxxxx&x=1" is not a NATS server URL (does not parse)`},
		{"nats url ws query after ; hidden", onNATS(func(c *Config) { c.NATS.URL = []string{"wss://a.test:42x2/nats?x=1;token=s3cret&y=2"} }), `nats.url: "wss://a.test:42x2/nats?x=1;token=xxxxx&y=2" is not a NATS server URL (does not parse)`},
		{"nats url ws path with @", onNATS(func(c *Config) { c.NATS.URL = []string{"ws://a.test/nats@v1"} }), `nats.url: "ws://xxxxx@v1" is not a NATS server URL (an @ after the host`},
		// An @ in a query's value, after the user info: what followed it,
		// a token's end, was shown as the host, the ? and all before the
		// @ taken for the user info.
		{"nats url query with @ hidden", onNATS(func(c *Config) { c.NATS.URL = []string{"nats://u:pw@a.test:4222?token=ab@s3cretQ"} }), `nats.url: "nats://u:xxxxx@xxxxx" is not a NATS server URL (an @ after the host`},
		{"nats url ws query with @ hidden", onNATS(func(c *Config) { c.NATS.URL = []string{"wss://a.test/nats?token=ab@s3cretQ#f"} }), `nats.url: "wss://xxxxx@xxxxx" is not a NATS server URL (an @ after the host`},
		// A ? in a password is not told apart from an @ in a query: the
		// host is hidden too.
		{"nats url password with ? hidden", onNATS(func(c *Config) { c.NATS.URL = []string{"nats://u:s3c?ret@a.test:4222"} }), `nats.url: "nats://u:xxxxx@xxxxx" is not a NATS server URL`},
		// A comma in a password or a token, which splits a variable's or
		// a YAML text's list: the URL's head showed the password's.
		{"nats url password cut at a comma hidden", onNATS(func(c *Config) { c.NATS.URL = []string{"nats://u:s3c", "ret@a.test:4222"} }), `nats.url: "nats://xxxxx" is not a NATS server URL (does not parse)`},
		{"nats url token cut at a comma hidden", onNATS(func(c *Config) { c.NATS.URL = []string{"ws://s3c", "ret@a.test:4222", "nats://b.test"} }), `nats.url: "nats://b.test" is a nats or tls URL among WebSocket ones ("ws://xxxxx")`},
		{"nats url cut at a comma", onNATS(func(c *Config) { c.NATS.URL = []string{"nats://u:s3c", "ret@a.test:4222"} }), `nats.url: "xxxxx@a.test:4222" is not a NATS server URL (no scheme: start it with nats://; or the end of the URL before it, cut at a comma of its password or token, as a comma separates servers: write that comma as %2C)`},
		{"nats url token hidden, mixed", onNATS(func(c *Config) { c.NATS.URL = []string{"WS://a.test", "nats://s3cret@b.test"} }), `nats.url: "nats://xxxxx@b.test" is a nats or tls URL among WebSocket ones ("WS://a.test")`},
		{"nats stream empty", onNATS(func(c *Config) { c.NATS.Stream = "" }), `nats.stream: "" is empty`},
		{"nats stream dot", onNATS(func(c *Config) { c.NATS.Stream = "SSE.HUB" }), `nats.stream: "SSE.HUB" is not a JetStream stream name`},
		{"nats stream wildcard", onNATS(func(c *Config) { c.NATS.Stream = "SSE*" }), `nats.stream: "SSE*" is not a JetStream stream name`},
		{"nats stream slash", onNATS(func(c *Config) { c.NATS.Stream = "a/b" }), `nats.stream: "a/b" is not a JetStream stream name`},
		{"nats stream space", onNATS(func(c *Config) { c.NATS.Stream = "SSE HUB" }), `nats.stream: "SSE HUB" is not a JetStream stream name`},
		{"nats stream long", onNATS(func(c *Config) { c.NATS.Stream = strings.Repeat("S", 256) }), `nats.stream: "SSSS`},
		{"nats prefix empty", onNATS(func(c *Config) { c.NATS.SubjectPrefix = "" }), `nats.subject_prefix: "" is empty`},
		{"nats prefix wildcard", onNATS(func(c *Config) { c.NATS.SubjectPrefix = "ssehub.>" }), `nats.subject_prefix: "ssehub.>" is not a subject prefix`},
		{"nats prefix star", onNATS(func(c *Config) { c.NATS.SubjectPrefix = "*.hub" }), `nats.subject_prefix: "*.hub" is not a subject prefix`},
		{"nats prefix empty token", onNATS(func(c *Config) { c.NATS.SubjectPrefix = "a..b" }), `nats.subject_prefix: "a..b" is not a subject prefix`},
		{"nats prefix trailing dot", onNATS(func(c *Config) { c.NATS.SubjectPrefix = "ssehub." }), `nats.subject_prefix: "ssehub." is not a subject prefix`},
		{"nats prefix system", onNATS(func(c *Config) { c.NATS.SubjectPrefix = "$JS" }), `nats.subject_prefix: "$JS" is not a subject prefix`},
		{"nats prefix long", onNATS(func(c *Config) { c.NATS.SubjectPrefix = strings.Repeat("a", 256) }), `nats.subject_prefix: "aaaa`},
		{"nats replicas zero", onNATS(func(c *Config) { c.NATS.Replicas = 0 }), `nats.replicas: 0 must be between 1 and 5`},
		{"nats replicas six", onNATS(func(c *Config) { c.NATS.Replicas = 6 }), `nats.replicas: 6 must be between 1 and 5`},
		{"nats storage", onNATS(func(c *Config) { c.NATS.Storage = "disk" }), `nats.storage: "disk" must be one of file, memory`},
		{"nats store dir empty", func(c *Config) { c.Hub.Broker, c.NATS.Embedded, c.NATS.StoreDir = "nats", true, " " }, `nats.store_dir: " " is empty`},
		{"nats embedded without the nats broker", func(c *Config) { c.NATS.Embedded = true }, `nats.embedded: true needs hub.broker: nats (it is "memory")`},
		{"nats embedded with replicas", func(c *Config) {
			c.Hub.Broker, c.NATS.Embedded, c.NATS.Replicas = "nats", true, 3
		}, `nats.replicas: 3 is more than the embedded server`},
		{"nats credentials missing", func(c *Config) {
			c.Hub.Broker, c.NATS.CredentialsFile = "nats", "absent/hub.creds"
		}, `nats.credentials_file: "absent/hub.creds": no such file or directory`},
		{"nats credentials a directory", func(c *Config) {
			c.Hub.Broker, c.NATS.CredentialsFile = "nats", "."
		}, `nats.credentials_file: ".": not a regular file`},
		{"nats ca file missing", func(c *Config) {
			c.Hub.Broker, c.NATS.CAFile = "nats", "absent/ca.pem"
		}, `nats.ca_file: "absent/ca.pem": no such file or directory`},
		{"nats ca file without a certificate", func(c *Config) {
			c.Hub.Broker, c.NATS.CAFile = "nats", "validate_test.go"
		}, `nats.ca_file: "validate_test.go": holds no PEM certificate`},
		{"publish token empty", func(c *Config) { c.Auth.PublishTokens = []string{"ok", ""} }, `auth.publish_tokens[1]: empty token`},
		{"subscribe token space", func(c *Config) { c.Auth.SubscribeTokens = []string{"sec ret"} }, `auth.subscribe_tokens[0]: token contains whitespace`},
		{"jwt secret short", func(c *Config) { c.Auth.JWT.HMACSecret = "short" }, `auth.jwt.hmac_secret: 5 bytes: at least 32 are needed`},
		{"jwt secret blank", func(c *Config) { c.Auth.JWT.HMACSecret = strings.Repeat(" ", 40) }, `auth.jwt.hmac_secret: white space alone`},
		{"jwt key file missing", func(c *Config) { c.Auth.JWT.PublicKeyFile = "absent/jwt.pem" }, `auth.jwt.public_key_file: "absent/jwt.pem": no such file or directory`},
		{"jwt algorithm none", func(c *Config) {
			c.Auth.JWT.HMACSecret, c.Auth.JWT.Algorithms = jwtSecret, []string{"HS256", "none"}
		}, `auth.jwt.algorithms: "none" is never accepted`},
		{"jwt algorithm lower case", func(c *Config) {
			c.Auth.JWT.HMACSecret, c.Auth.JWT.Algorithms = jwtSecret, []string{"hs256"}
		}, `auth.jwt.algorithms: "hs256" is written HS256: algorithm names are case-sensitive, as a token's header writes them`},
		{"jwt algorithm in another case", func(c *Config) {
			c.Auth.JWT.HMACSecret, c.Auth.JWT.Algorithms = jwtSecret, []string{"HS256", "EDDSA"}
		}, `auth.jwt.algorithms: "EDDSA" is written EdDSA: algorithm names are case-sensitive`},
		{"jwt algorithm unknown", func(c *Config) {
			c.Auth.JWT.HMACSecret, c.Auth.JWT.Algorithms = jwtSecret, []string{"HS1024"}
		}, `auth.jwt.algorithms: "HS1024" must be one of HS256, HS384, HS512, RS256`},
		{"jwt HMAC with only a public key", func(c *Config) {
			c.Auth.JWT.PublicKeyFile, c.Auth.JWT.Algorithms = publicKey, []string{"RS256", "HS256"}
		}, `auth.jwt.algorithms: "HS256" needs auth.jwt.hmac_secret`},
		{"jwt RSA without a public key", func(c *Config) {
			c.Auth.JWT.HMACSecret, c.Auth.JWT.Algorithms = jwtSecret, []string{"RS256"}
		}, `auth.jwt.algorithms: "RS256" needs auth.jwt.public_key_file`},
		{"jwt HS512 with a secret of 32 bytes", func(c *Config) {
			c.Auth.JWT.HMACSecret, c.Auth.JWT.Algorithms = jwtSecret, []string{"HS256", "HS512"}
		}, `auth.jwt.algorithms: "HS512" needs an auth.jwt.hmac_secret of 64 bytes or more, as long as its hash (RFC 7518); it has 32 (value not shown)`},
		{"jwt HS384 with a secret of 40 bytes", func(c *Config) {
			c.Auth.JWT.HMACSecret, c.Auth.JWT.Algorithms = jwtSecret+"01234567", []string{"HS384"}
		}, `auth.jwt.algorithms: "HS384" needs an auth.jwt.hmac_secret of 48 bytes or more`},
		{"jwt leeway negative", func(c *Config) { c.Auth.JWT.Leeway = -time.Second }, `auth.jwt.leeway: "-1s" must be between 0s and 5m0s`},
		{"jwt leeway long", func(c *Config) { c.Auth.JWT.Leeway = time.Hour }, `auth.jwt.leeway: "1h0m0s" must be between`},
		{"jwt max lifetime negative", func(c *Config) { c.Auth.JWT.MaxLifetime = -time.Second }, `auth.jwt.max_lifetime: "-1s" must be 0s (no limit) or at least 1s`},
		{"jwt max lifetime under a second", func(c *Config) { c.Auth.JWT.MaxLifetime = 500 * time.Millisecond }, `auth.jwt.max_lifetime: "500ms" must be 0s (no limit) or at least 1s`},
		{"jwt cookie name", func(c *Config) { c.Auth.JWT.CookieName = "a b" }, `auth.jwt.cookie_name: "a b" is not a cookie name`},
		// Checks of JWTs that are never accepted: a deployment whose
		// SSEHUB_AUTH_JWT_HMAC_SECRET went missing started with JWTs off,
		// and, without subscribe tokens, every topic open to subscribe.
		{
			"jwt issuer without a key", func(c *Config) { c.Auth.JWT.Issuer = "https://auth.test" },
			`auth.jwt.issuer: "https://auth.test" is set, but no JWT key is (auth.jwt.hmac_secret or auth.jwt.public_key_file)`,
		},
		{
			"jwt audience without a key", func(c *Config) { c.Auth.JWT.Audience = "ssehub" },
			`auth.jwt.audience: "ssehub" is set, but no JWT key is`,
		},
		{
			"jwt max lifetime without a key", func(c *Config) { c.Auth.JWT.MaxLifetime = time.Hour },
			`auth.jwt.max_lifetime: "1h0m0s" is set, but no JWT key is`,
		},
		{"jwt cookie name empty", func(c *Config) { c.Auth.JWT.CookieName = "" }, `auth.jwt.cookie_name: "" is not a cookie name`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := Default()
			tt.mutate(&c)
			err := c.Validate()
			if !errors.Is(err, ErrInvalidValue) {
				t.Fatalf("err = %v, want ErrInvalidValue", err)
			}
			if !strings.Contains(err.Error(), tt.want) {
				t.Errorf("err = %q, want it to contain %q", err, tt.want)
			}
			var ke *KeyError
			if !errors.As(err, &ke) || !strings.HasPrefix(tt.want, ke.Key+":") {
				t.Errorf("err %q does not carry the key of %q", err, tt.want)
			}
		})
	}
}

// jwtSecret is an HMAC secret of the shortest length allowed.
const jwtSecret = "0123456789abcdef0123456789abcdef"

func TestValidateHidesTokens(t *testing.T) {
	c := Default()
	c.Auth.PublishTokens = []string{"top s3cret"}
	c.Auth.JWT.HMACSecret = "hmac-s3cret"
	err := c.Validate()
	if err == nil || strings.Contains(err.Error(), "s3cret") || !strings.Contains(err.Error(), "auth.jwt.hmac_secret") {
		t.Errorf("err = %v, want an error that names the secrets' keys and shows no secret", err)
	}
}

func TestValidateAccepts(t *testing.T) {
	publicKey, _ := writeTLSPair(t) // a certificate holds a public key
	tests := []struct {
		name   string
		mutate func(*Config)
	}{
		{"empty origins, same-origin only", func(c *Config) { c.CORS.AllowedOrigins = []string{} }},
		{"nil origins", func(c *Config) { c.CORS.AllowedOrigins = nil }},
		{"star without credentials", func(c *Config) { c.CORS.AllowedOrigins = []string{"*"} }},
		{"exact and wildcard origins with credentials", func(c *Config) {
			c.CORS.AllowedOrigins = []string{"http://localhost:5173", "https://*.example.com", "http://[::1]:8080", "http://127.0.0.1"}
			c.CORS.AllowCredentials = true
		}},
		// Without credentials a page elsewhere reads no more than "*" lets it.
		{"wildcard over a public suffix without credentials", func(c *Config) { c.CORS.AllowedOrigins = []string{"https://*.github.io", "https://*.com"} }},
		{"wildcards over private names with credentials", func(c *Config) {
			c.CORS.AllowedOrigins = []string{"http://*.localhost:5173", "https://*.internal", "https://*.corp", "https://*.example.co.uk"}
			c.CORS.AllowCredentials = true
		}},
		{"any header", func(c *Config) { c.CORS.AllowedHeaders = []string{"*"} }},
		{"port 0", func(c *Config) { c.Server.Addr = ":0" }},
		{"ipv6 addr", func(c *Config) { c.Server.Addr = "[::1]:0" }},
		{"host addr", func(c *Config) { c.Server.Addr = "localhost:8111" }},
		{"retry zero", func(c *Config) { c.Stream.Retry = 0 }},
		{"heartbeat bounds", func(c *Config) { c.Stream.HeartbeatInterval = time.Second }},
		{"heartbeat a day", func(c *Config) { c.Stream.HeartbeatInterval = 24 * time.Hour }},
		{"history at cap", func(c *Config) { c.Hub.HistorySize = 10_000_000 }},
		{"max age zero", func(c *Config) { c.CORS.MaxAge = 0 }},
		{"max age a second", func(c *Config) { c.CORS.MaxAge = time.Second }},
		{"ticker interval bounds", func(c *Config) { c.Demo.TickerInterval = 60 * time.Second }},
		{"ticker interval zero", func(c *Config) { c.Demo.TickerInterval = 0 }},
		{"ticker count bounds", func(c *Config) { c.Demo.TickerCount, c.Demo.TickerInterval = 10000, 50*time.Millisecond }},
		{"default ticker exactly the demo duration", func(c *Config) { c.Demo.TickerCount, c.Demo.MaxDuration = 600, 10*time.Minute }},
		{"event bytes at cap", func(c *Config) { c.Hub.MaxEventBytes = 16 << 20 }},
		{"upper-case level", func(c *Config) { c.Log.Level = "WARN" }},
		{"tokens", func(c *Config) { c.Auth.PublishTokens = []string{"abc", "d-e_f.g"} }},
		{"nats broker", func(c *Config) { c.Hub.Broker = "NATS" }},
		{"nats cluster", onNATS(func(c *Config) { c.NATS.URL = []string{"nats://a.test:4222", "tls://u:p@b.test", "NATS://c.test"} })},
		{"nats cluster over WebSocket", onNATS(func(c *Config) {
			// A WebSocket URL may carry a path and a query, which nats.go
			// sends (a NATS behind a proxy at /nats).
			c.NATS.URL = []string{"ws://[::1]:8080", "wss://c.test/", "wss://d.test/nats", "ws://e.test:8080/nats/ws?region=eu", "WSS://f.test/nats?regions=eu%2Cus", "wss://s3c%2Fret@g.test/nats%40v1"}
		})},
		{"nats stream name", onNATS(func(c *Config) { c.NATS.Stream = "orders-EU_2" })},
		{"nats nested prefix", onNATS(func(c *Config) { c.NATS.SubjectPrefix = "acme.ssehub-1" })},
		{"nats replicas 5", onNATS(func(c *Config) { c.NATS.Replicas = 5 })},
		{"nats memory storage", onNATS(func(c *Config) { c.NATS.Storage = "memory" })},
		{"nats embedded", func(c *Config) { c.Hub.Broker, c.NATS.Embedded = "nats", true }},
		// A key the configuration leaves unused does not stop start-up:
		// nats.store_dir without the embedded server, nats.url with it.
		{"nats store dir unchecked without the embedded server", func(c *Config) { c.Hub.Broker, c.NATS.StoreDir = "nats", "~/nats" }},
		{"nats url unchecked with the embedded server", func(c *Config) {
			c.Hub.Broker, c.NATS.Embedded, c.NATS.URL = "nats", true, []string{"nats-host:4222"}
		}},
		// With the memory broker no nats key but nats.embedded is used, and
		// none is checked: nats.url had to be a NATS URL, nats.stream a
		// stream name, while nats.credentials_file could name no file.
		{"nats keys unchecked with the memory broker", func(c *Config) {
			c.NATS = NATSConfig{
				URL: []string{"nats-host:4222"}, CredentialsFile: "absent/hub.creds", CAFile: "absent/ca.pem",
				Stream: "SSE.HUB", SubjectPrefix: "ssehub.>", Replicas: 0, Storage: "disk", StoreDir: "~/nats",
			}
		}},
		// The embedded server asks for no credentials: a credentials file
		// is unused, as nats.url and nats.ca_file are.
		{"nats credentials unchecked with the embedded server", onNATS(func(c *Config) {
			c.NATS.Embedded, c.NATS.CredentialsFile, c.NATS.CAFile = true, "absent/hub.creds", "absent/ca.pem"
		})},
		{"nats credentials file", func(c *Config) { c.Hub.Broker, c.NATS.CredentialsFile = "nats", "validate_test.go" }},
		{"jwt secret, every algorithm it fits", func(c *Config) { c.Auth.JWT.HMACSecret = jwtSecret }},
		{"jwt public key pinned", func(c *Config) {
			c.Auth.JWT.PublicKeyFile, c.Auth.JWT.Algorithms = publicKey, []string{"ES256", "EdDSA"}
		}},
		{"jwt both keys", func(c *Config) {
			c.Auth.JWT.HMACSecret, c.Auth.JWT.PublicKeyFile, c.Auth.JWT.Algorithms = jwtSecret+jwtSecret, publicKey, []string{"HS512", "PS256"}
		}},
		{"jwt no leeway", func(c *Config) { c.Auth.JWT.Leeway = 0 }},
	}
	for _, tt := range tests {
		c := Default()
		tt.mutate(&c)
		if err := c.Validate(); err != nil {
			t.Errorf("%s: %v", tt.name, err)
		}
	}
}

// onNATS returns mutate with hub.broker: nats first, for the nats keys,
// which are checked only with the NATS broker.
func onNATS(mutate func(*Config)) func(*Config) {
	return func(c *Config) {
		c.Hub.Broker = "nats"
		mutate(c)
	}
}

// TestValidateReportsEveryProblem checks that one call names all bad keys,
// so a user fixes them in one go.
func TestValidateReportsEveryProblem(t *testing.T) {
	c := Default()
	c.Stream.Retry = -1
	c.Log.Format = "xml"
	err := c.Validate()
	for _, want := range []string{"stream.retry:", "log.format:"} {
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("err = %v, want it to name %s", err, want)
		}
	}
}
