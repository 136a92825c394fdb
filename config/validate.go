package config

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"slices"
	"strconv"
	"strings"
	"time"
	"unicode"
)

// Bounds checked by Validate.
const (
	maxTickerCount    = 10000
	maxTickerInterval = 60 * time.Second
	maxEventBytes     = 16 << 20
	maxReplicas       = 5   // JetStream's own limit on a stream's replicas
	maxStreamName     = 255 // JetStream's own limit on a stream's name
	maxSubjectPrefix  = 255 // as a topic's: prefix and topic stay far below NATS's 4096-byte control line
)

// Validate checks every value of c and returns nil or one *KeyError per
// problem, joined with errors.Join; each names the key and the value
// (tokens excepted: they are secrets). Load calls it; a Config built by
// hand can be checked with it too.
func (c Config) Validate() error {
	return c.validate(context.Background())
}

// validate is Validate, whose reads of the files c names stop waiting
// for a lease another process holds on one when ctx is done
// (ReadPEMFileContext): LoadContext's, which a signal ends.
func (c Config) validate(ctx context.Context) error {
	return errors.Join(slices.Concat(
		c.Server.validate(ctx),
		c.CORS.validate(),
		c.Stream.validate(),
		c.Demo.validate(),
		c.Log.validate(),
		c.Hub.validate(),
		c.Auth.validate(ctx),
		c.crossChecks(ctx),
	)...)
}

// crossChecks checks the bounds that tie two sections together.
func (c Config) crossChecks(ctx context.Context) []error {
	var errs []error
	if c.Hub.MaxSubscribers > c.Stream.MaxStreams {
		errs = append(errs, invalid("hub.max_subscribers", fmt.Sprintf("%d is above stream.max_streams (%d), which caps every stream, subscriptions included", c.Hub.MaxSubscribers, c.Stream.MaxStreams)).with("stream.max_streams"))
	}
	if c.Hub.HistoryMaxBytes < c.Hub.MaxEventBytes {
		errs = append(errs, invalid("hub.history_max_bytes", fmt.Sprintf("%d is below hub.max_event_bytes (%d): the history could not hold the largest event", c.Hub.HistoryMaxBytes, c.Hub.MaxEventBytes)).with("hub.max_event_bytes"))
	}
	return append(errs, c.natsChecks(ctx)...)
}

// natsChecks checks the nats keys, which only hub.broker: nats uses: with
// the memory broker they are unused, and unchecked, unless nats.embedded
// is true, which needs the NATS broker and says it was meant. The embedded
// server, being one server, holds one copy of a stream.
func (c Config) natsChecks(ctx context.Context) []error {
	var errs []error
	if c.NATS.Embedded && !c.Hub.NATS() {
		errs = append(errs, invalid("nats.embedded", fmt.Sprintf("true needs hub.broker: nats (it is %q)", c.Hub.Broker)).with("hub.broker"))
	} else if !c.Hub.NATS() {
		return nil
	}
	errs = append(errs, c.NATS.validate()...)
	if c.NATS.Embedded && c.NATS.Replicas > 1 {
		errs = append(errs, invalid("nats.replicas", fmt.Sprintf("%d is more than the embedded server (nats.embedded: true), a single server, can hold: use 1", c.NATS.Replicas)).with("nats.embedded"))
	}
	if c.NATS.Embedded {
		// nats.url, nats.credentials_file and nats.ca_file are unused: the
		// embedded server, in the process, asks for no credentials and
		// speaks no TLS.
		return errs
	}
	if c.NATS.CredentialsFile != "" {
		if err := checkCredsFile(ctx, c.NATS.CredentialsFile); err != nil {
			errs = append(errs, invalid("nats.credentials_file", fmt.Sprintf("%q: %v", c.NATS.CredentialsFile, err)))
		}
	}
	if c.NATS.CAFile != "" {
		if err := checkCAFile(ctx, c.NATS.CAFile); err != nil {
			errs = append(errs, invalid("nats.ca_file", fmt.Sprintf("%q: %v", c.NATS.CAFile, err)))
		}
	}
	return errs
}

// unused reports whether key is a nats key c leaves unused, and
// unchecked: every one but nats.embedded with the memory broker (and
// nats.embedded false), nats.url, nats.credentials_file and nats.ca_file
// with the embedded server, and nats.store_dir without it.
func (c Config) unused(key string) bool {
	switch {
	case !strings.HasPrefix(key, "nats.") || key == "nats.embedded":
		return false
	case !c.Hub.NATS() && !c.NATS.Embedded:
		return true
	case c.NATS.Embedded:
		return key == "nats.url" || key == "nats.credentials_file" || key == "nats.ca_file"
	default:
		return key == "nats.store_dir"
	}
}

func (s ServerConfig) validate(ctx context.Context) []error {
	return append(collect(
		checkAddr("server.addr", s.Addr),
		durationAbove("server.shutdown_timeout", s.ShutdownTimeout, 0),
		checkReadTimeout("server.read_timeout", s.ReadTimeout),
		checkProxies("server.trusted_proxies", s.TrustedProxies),
	), s.validateTLS(ctx)...)
}

// minReadTimeout bounds server.read_timeout from below. A request,
// headers and body, must arrive within it, and with server.tls the TLS
// handshake too, a round trip at least: 10ms (a typo for 10s) cut off
// HTTPS clients more than a few milliseconds away, and slow bodies, while
// a health check over loopback still passed.
const minReadTimeout = time.Second

// checkReadTimeout checks d >= minReadTimeout.
func checkReadTimeout(key string, d time.Duration) error {
	if d >= minReadTimeout {
		return nil
	}
	return invalid(key, fmt.Sprintf("%q must be at least %v: a request, and with server.tls its TLS handshake, must arrive whole within it", d, minReadTimeout))
}

// checkProxies checks that every entry is an IP address or a CIDR. An
// address with a zone ("fe80::1%eth0") is neither to the HTTP layer.
//
// An IPv4 address written as IPv6 (::ffff:10.0.0.1) is refused: Gin took
// it for the IPv6 network ::/32, which trusted ::1 and not 10.0.0.1, and
// a CIDR of such addresses matches no IPv4 client.
func checkProxies(key string, proxies []string) error {
	for i, p := range proxies {
		prefix, err := netip.ParsePrefix(p)
		if err != nil {
			if a, aerr := netip.ParseAddr(p); aerr == nil && a.Zone() == "" {
				prefix, err = a.Prefix(a.BitLen())
			}
		}
		if err != nil {
			return invalidItem(key, i, fmt.Sprintf("%q is neither an IP address nor a CIDR (e.g. \"10.0.0.0/8\", \"127.0.0.1\")", p))
		}
		if a := prefix.Addr(); a.Is4In6() {
			v4 := a.Unmap().String()
			if bits := prefix.Bits() - 96; strings.Contains(p, "/") {
				v4 = netip.PrefixFrom(a.Unmap(), max(bits, 0)).Masked().String()
			}
			return invalidItem(key, i, fmt.Sprintf("%q is an IPv4 address written as IPv6: write it as %s", p, v4))
		}
	}
	return nil
}

func (c CORSConfig) validate() []error {
	var errs []error
	for i, o := range c.AllowedOrigins {
		if o == "*" {
			if c.AllowCredentials {
				errs = append(errs, invalidItem("cors.allowed_origins", i,
					`"*" cannot be combined with cors.allow_credentials: true (list the origins instead)`).with("cors.allow_credentials"))
			}
			continue
		}
		p, err := parseOrigin(o, true)
		if err != nil {
			errs = append(errs, invalidItem("cors.allowed_origins", i, fmt.Sprintf("%q is not an origin (%v)", o, err)))
			continue
		}
		if c.AllowCredentials && p.overPublicSuffix() {
			errs = append(errs, invalidItem("cors.allowed_origins", i, fmt.Sprintf(
				"%q allows every site under a public suffix, anyone's: with cors.allow_credentials: true their pages would send a visitor's cookies and read the answers (list your origins instead)", o)).with("cors.allow_credentials"))
		}
	}
	errs = append(errs, c.validateHeaders("cors.allowed_headers", c.AllowedHeaders)...)
	errs = append(errs, c.validateHeaders("cors.exposed_headers", c.ExposedHeaders)...)
	if c.MaxAge > 0 && c.MaxAge < time.Second {
		// Access-Control-Max-Age: 0 bars caching a preflight at all, where
		// no header lets the browser cache it for its default 5s.
		return append(errs, invalid("cors.max_age", fmt.Sprintf(
			"%q is sent in whole seconds, as 0, which bars browsers from caching a preflight at all: use 1s or more, or 0s to send no Access-Control-Max-Age", c.MaxAge)))
	}
	return append(errs, collect(durationAtLeast("cors.max_age", c.MaxAge, 0))...)
}

// validateHeaders checks the header names of key. "*" is any header only
// without credentials: with them, browsers take it as a header named "*"
// (Fetch), and the page could send, or read, none of the others.
func (c CORSConfig) validateHeaders(key string, headers []string) []error {
	var errs []error
	for i, h := range headers {
		switch {
		case h == "*" && c.AllowCredentials:
			errs = append(errs, invalidItem(key, i,
				`"*" means no header with cors.allow_credentials: true: browsers take it as a header named "*" then (list the headers instead)`).with("cors.allow_credentials"))
		case !validHeaderName(h):
			errs = append(errs, invalidItem(key, i, fmt.Sprintf("%q is not a header name", h)))
		}
	}
	return errs
}

// maxRetry bounds stream.retry: a day is more than any client should
// wait, and browsers' timers fire a wait longer than about 24.8 days
// (2^31 ms) at once, so a longer retry: made clients reconnect in a loop.
const maxRetry = 24 * time.Hour

// maxWriteTimeout bounds stream.write_timeout, which is also every
// connection's TCP_USER_TIMEOUT, in milliseconds of a C int: 600h does not
// fit, and the listener failed with "invalid argument".
const maxWriteTimeout = 24 * time.Hour

// minWriteTimeout bounds stream.write_timeout from below. As
// TCP_USER_TIMEOUT it is how long what a connection sent may stay
// unacknowledged: Linux retransmits no later than it and ends the
// connection once it has passed, so 10ms (a typo for 10s) would end the
// connection of every client more than 10ms away at its first write,
// while a client over loopback still streamed. A lost
// packet needs a retransmission, 200ms at the least (Linux's minimum RTO),
// and a blocked write fails after half of it. A second leaves a healthy
// connection a round trip and a retransmission on any network.
const minWriteTimeout = time.Second

// minHeartbeat bounds stream.heartbeat_interval from below. A heartbeat is
// a write to every idle stream: 1ns sent one idle stream 8.6 MB of
// heartbeats in 3 s, and 15ms (a typo for 15s) 129 heartbeats in 2 s, each
// a wake-up of the process. No proxy closes a stream idle for less than a
// second. maxHeartbeat is a day, as stream.retry and stream.write_timeout
// are: beyond it a heartbeat keeps no idle timeout open.
const (
	minHeartbeat = time.Second
	maxHeartbeat = 24 * time.Hour
)

func (s StreamConfig) validate() []error {
	return collect(
		durationBetween("stream.heartbeat_interval", s.HeartbeatInterval, minHeartbeat, maxHeartbeat),
		durationBetween("stream.retry", s.Retry, 0, maxRetry),
		durationBetween("stream.write_timeout", s.WriteTimeout, minWriteTimeout, maxWriteTimeout),
		oneOf("stream.transport", s.Transport, "gin", "detached"),
		intBetween("stream.max_streams", s.MaxStreams, 1, 0),
	)
}

func (d DemoConfig) validate() []error {
	var errs []error
	if d.TickerCount < 1 || d.TickerCount > maxTickerCount {
		errs = append(errs, invalid("demo.ticker_count",
			fmt.Sprintf("%d must be between 1 and %d", d.TickerCount, maxTickerCount)))
	}
	if d.TickerInterval < 0 || d.TickerInterval > maxTickerInterval {
		errs = append(errs, invalid("demo.ticker_interval",
			fmt.Sprintf("%q must be between 0s and %v", d.TickerInterval, maxTickerInterval)))
	}
	errs = append(errs, collect(
		durationAbove("demo.max_duration", d.MaxDuration, 0),
		intBetween("demo.max_tokens", d.MaxTokens, 1, 0),
	)...)
	// GET /stream without a query runs ticker_count lines ticker_interval
	// apart: beyond max_duration every such request, the demo page's
	// first panel among them, would be refused with a 400.
	if len(errs) == 0 {
		if total := time.Duration(d.TickerCount) * d.TickerInterval; total > d.MaxDuration {
			errs = append(errs, invalid("demo.ticker_count", fmt.Sprintf(
				"%d × demo.ticker_interval %s = %s is above demo.max_duration (%s): GET /stream without a query would be refused",
				d.TickerCount, d.TickerInterval, total, d.MaxDuration)).with("demo.ticker_interval", "demo.max_duration"))
		}
	}
	return errs
}

func (l LogConfig) validate() []error {
	return collect(
		oneOf("log.level", l.Level, "debug", "info", "warn", "error"),
		oneOf("log.format", l.Format, "text", "json"),
	)
}

// maxHistorySize bounds hub.history_size. The history's ring is allocated
// whole at start, 32 bytes a slot (internal/stream's historyEntry), by the
// memory broker and, with hub.broker: nats, by each instance's local
// history (JetStream's MaxMsgs takes the same value and preallocates
// nothing): with 10,000,000 slots an idle server's heap was 322 MB (its
// pages become resident as the ring fills), and 99999999999 ended the
// start in a Go out-of-memory crash. More slots would not be filled
// anyway: an event is charged at least 64 bytes against
// hub.history_max_bytes, so its default (64 MiB) holds about a million
// events at most.
const maxHistorySize = 10_000_000

func (h HubConfig) validate() []error {
	var errs []error
	if h.HistorySize < 1 || h.HistorySize > maxHistorySize {
		errs = append(errs, invalid("hub.history_size", fmt.Sprintf(
			"%d must be between 1 and %d (its ring is allocated at start, 32 bytes a slot: %d MB at most)",
			h.HistorySize, maxHistorySize, maxHistorySize*32/1_000_000)))
	}
	return append(errs, collect(
		intBetween("hub.history_max_bytes", h.HistoryMaxBytes, 1, 0),
		intBetween("hub.subscriber_buffer", h.SubscriberBuffer, 1, 0),
		intBetween("hub.max_subscribers", h.MaxSubscribers, 1, 0),
		intBetween("hub.max_event_bytes", h.MaxEventBytes, 1, maxEventBytes),
		intBetween("hub.max_topics_per_subscription", h.MaxTopicsPerSubscription, 1, 0),
		oneOf("hub.broker", h.Broker, "memory", "nats"),
	)...)
}

// validate checks the nats keys: nats.url only without the embedded
// server, nats.store_dir only with it, as each is used.
func (n NATSConfig) validate() []error {
	var errs []error
	if n.Embedded {
		errs = collect(nonBlank("nats.store_dir", n.StoreDir), checkDir("nats.store_dir", n.StoreDir))
	} else {
		errs = checkNATSURLs("nats.url", n.URL)
	}
	return append(errs, collect(
		checkStreamName("nats.stream", n.Stream),
		checkSubjectPrefix("nats.subject_prefix", n.SubjectPrefix),
		intBetween("nats.replicas", n.Replicas, 1, maxReplicas),
		oneOf("nats.storage", n.Storage, "file", "memory"),
	)...)
}

func (a AuthConfig) validate(ctx context.Context) []error {
	return slices.Concat(checkTokens("auth.publish_tokens", a.PublishTokens),
		checkTokens("auth.subscribe_tokens", a.SubscribeTokens),
		a.JWT.validate(ctx))
}

// collect returns the non-nil errors among errs.
func collect(errs ...error) []error {
	return slices.DeleteFunc(errs, func(err error) bool { return err == nil })
}

// checkAddr checks that addr is host:port with a numeric port 0-65535.
func checkAddr(key, addr string) error {
	host, port, err := net.SplitHostPort(addr)
	if err == nil && !strings.ContainsFunc(host, unicode.IsSpace) {
		if n, perr := strconv.ParseUint(port, 10, 16); perr == nil && n <= 65535 {
			return nil
		}
	}
	return invalid(key, fmt.Sprintf("%q is not host:port with a port 0-65535 (e.g. \":8111\")", addr))
}

// durationAbove checks d > low.
func durationAbove(key string, d, low time.Duration) error {
	if d > low {
		return nil
	}
	return invalid(key, fmt.Sprintf("%q must be greater than %v", d, low))
}

// durationBetween checks low <= d <= high.
func durationBetween(key string, d, low, high time.Duration) error {
	if d >= low && d <= high {
		return nil
	}
	return invalid(key, fmt.Sprintf("%q must be between %v and %v", d, low, high))
}

// durationAtLeast checks d >= low.
func durationAtLeast(key string, d, low time.Duration) error {
	if d >= low {
		return nil
	}
	return invalid(key, fmt.Sprintf("%q must not be less than %v", d, low))
}

// intBetween checks low <= n and, when high > 0, n <= high.
func intBetween(key string, n, low, high int) error {
	switch {
	case high > 0 && (n < low || n > high):
		return invalid(key, fmt.Sprintf("%d must be between %d and %d", n, low, high))
	case n < low:
		return invalid(key, fmt.Sprintf("%d must be at least %d", n, low))
	}
	return nil
}

// oneOf checks that s is one of choices, without regard to case.
func oneOf(key, s string, choices ...string) error {
	if slices.Contains(choices, strings.ToLower(s)) {
		return nil
	}
	return invalid(key, fmt.Sprintf("%q must be one of %s", s, strings.Join(choices, ", ")))
}

// checkTokens checks that every token is non-empty and holds no
// whitespace. Tokens are secrets, so errors name the index, not the value.
func checkTokens(key string, tokens []string) []error {
	var errs []error
	for i, t := range tokens {
		k := fmt.Sprintf("%s[%d]", key, i)
		switch {
		case t == "":
			errs = append(errs, invalid(k, "empty token"))
		case strings.ContainsFunc(t, unicode.IsSpace):
			errs = append(errs, invalid(k, "token contains whitespace (value not shown)"))
		}
	}
	return errs
}

// validHeaderName reports whether s is an HTTP field name (an RFC 9110
// token); "*" is one too and means any header.
func validHeaderName(s string) bool {
	if s == "" {
		return false
	}
	for _, r := range s {
		if !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || strings.ContainsRune("!#$%&'*+-.^_`|~", r)) {
			return false
		}
	}
	return true
}
