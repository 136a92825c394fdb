package config

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/spf13/pflag"
)

// writeYAML writes content to a file in a fresh temporary directory and
// returns its path.
func writeYAML(t *testing.T, content string) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "ssehub.yaml")
	if err := os.WriteFile(path, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

// env returns a getenv that reads from m.
func env(m map[string]string) func(string) string {
	return func(name string) string { return m[name] }
}

func TestLoadLayers(t *testing.T) {
	path := writeYAML(t, `
server:
  addr: "127.0.0.1:9001"
stream:
  retry: 5s
  heartbeat_interval: 20s
hub:
  history_size: 500
log:
  level: warn
`)
	getenv := env(map[string]string{
		"SSEHUB_STREAM_RETRY":     "7s",
		"SSEHUB_HUB_HISTORY_SIZE": "600",
		"SSEHUB_SERVER_ADDR":      "127.0.0.1:9002",
		"SSEHUB_LOG_LEVEL":        "error",
		"SSEHUB_DEMO_ENABLED":     "false",
	})
	cfg, err := Load([]string{"--config", path, "--addr", "127.0.0.1:0", "--log-level=debug"}, getenv)
	if err != nil {
		t.Fatal(err)
	}
	checks := []struct {
		key       string
		got, want any
	}{
		{"stream.write_timeout (default)", cfg.Stream.WriteTimeout, 10 * time.Second},
		{"stream.heartbeat_interval (yaml)", cfg.Stream.HeartbeatInterval, 20 * time.Second},
		{"stream.retry (env over yaml)", cfg.Stream.Retry, 7 * time.Second},
		{"hub.history_size (env over yaml)", cfg.Hub.HistorySize, 600},
		{"demo.enabled (env over default)", cfg.Demo.Enabled, false},
		{"server.addr (flag over env and yaml)", cfg.Server.Addr, "127.0.0.1:0"},
		{"log.level (flag over env and yaml)", cfg.Log.Level, "debug"},
		{"log.format (default)", cfg.Log.Format, "text"},
	}
	for _, c := range checks {
		if c.got != c.want {
			t.Errorf("%s = %v, want %v", c.key, c.got, c.want)
		}
	}
}

// TestLoadEnvEveryKey sets every key through its environment variable and
// expects every field to change.
func TestLoadEnvEveryKey(t *testing.T) {
	creds := filepath.Join(t.TempDir(), "hub.creds")
	if err := os.WriteFile(creds, []byte("not read by config"), 0o600); err != nil {
		t.Fatal(err)
	}
	cert, key := writeTLSPair(t)
	pubKey := filepath.Join(t.TempDir(), "jwt.pem")
	if err := os.WriteFile(pubKey, readBytes(t, cert), 0o600); err != nil { // a certificate holds a public key
		t.Fatal(err)
	}
	vars := map[string]string{
		"SSEHUB_SERVER_ADDR":                     "127.0.0.1:0",
		"SSEHUB_SERVER_SHUTDOWN_TIMEOUT":         "3s",
		"SSEHUB_SERVER_READ_TIMEOUT":             "4s",
		"SSEHUB_SERVER_TRUSTED_PROXIES":          "10.0.0.0/8, 127.0.0.1",
		"SSEHUB_SERVER_TLS_CERT_FILE":            cert,
		"SSEHUB_SERVER_TLS_KEY_FILE":             key,
		"SSEHUB_SERVER_H2C":                      "false", // true below: it excludes TLS
		"SSEHUB_CORS_ALLOWED_ORIGINS":            "http://a.test, https://*.b.test",
		"SSEHUB_CORS_ALLOW_CREDENTIALS":          "true",
		"SSEHUB_CORS_ALLOWED_HEADERS":            "X-One,X-Two",
		"SSEHUB_CORS_EXPOSED_HEADERS":            "X-Three",
		"SSEHUB_CORS_MAX_AGE":                    "1m",
		"SSEHUB_STREAM_HEARTBEAT_INTERVAL":       "1500ms",
		"SSEHUB_STREAM_RETRY":                    "0s",
		"SSEHUB_STREAM_WRITE_TIMEOUT":            "2s",
		"SSEHUB_STREAM_TRANSPORT":                "detached",
		"SSEHUB_STREAM_MAX_STREAMS":              "100",
		"SSEHUB_DEMO_ENABLED":                    "false",
		"SSEHUB_DEMO_TICKER_COUNT":               "3",
		"SSEHUB_DEMO_TICKER_INTERVAL":            "50ms",
		"SSEHUB_DEMO_MAX_DURATION":               "1m",
		"SSEHUB_DEMO_MAX_TOKENS":                 "20",
		"SSEHUB_LOG_LEVEL":                       "debug",
		"SSEHUB_LOG_FORMAT":                      "json",
		"SSEHUB_HUB_BROKER":                      "nats",
		"SSEHUB_HUB_HISTORY_SIZE":                "11",
		"SSEHUB_HUB_HISTORY_MAX_BYTES":           "1000",
		"SSEHUB_HUB_HISTORY_GC_PACING":           "false",
		"SSEHUB_HUB_SUBSCRIBER_BUFFER":           "12",
		"SSEHUB_HUB_MAX_SUBSCRIBERS":             "13",
		"SSEHUB_HUB_MAX_EVENT_BYTES":             "14",
		"SSEHUB_HUB_MAX_TOPICS_PER_SUBSCRIPTION": "15",
		"SSEHUB_NATS_URL":                        "nats://n1.test:4222, tls://n2.test",
		"SSEHUB_NATS_CREDENTIALS_FILE":           creds,
		"SSEHUB_NATS_CA_FILE":                    cert, // a certificate: what the key needs
		"SSEHUB_NATS_STREAM":                     "EVENTS",
		"SSEHUB_NATS_SUBJECT_PREFIX":             "acme.hub",
		"SSEHUB_NATS_REPLICAS":                   "3",
		"SSEHUB_NATS_STORAGE":                    "memory",
		"SSEHUB_NATS_PUBLISH_BATCHING":           "false",
		"SSEHUB_NATS_EMBEDDED":                   "false", // true below: it excludes replicas 3
		"SSEHUB_NATS_STORE_DIR":                  "/var/lib/ssehub/nats",
		"SSEHUB_AUTH_PUBLISH_TOKENS":             "p1,p2",
		"SSEHUB_AUTH_SUBSCRIBE_TOKENS":           "s1",
		"SSEHUB_AUTH_JWT_HMAC_SECRET":            "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef",
		"SSEHUB_AUTH_JWT_PUBLIC_KEY_FILE":        pubKey,
		"SSEHUB_AUTH_JWT_ALGORITHMS":             "HS512, ES256",
		"SSEHUB_AUTH_JWT_ISSUER":                 "https://auth.test",
		"SSEHUB_AUTH_JWT_AUDIENCE":               "ssehub.test",
		"SSEHUB_AUTH_JWT_LEEWAY":                 "5s",
		"SSEHUB_AUTH_JWT_MAX_LIFETIME":           "24h",
		"SSEHUB_AUTH_JWT_COOKIE_NAME":            "hub_jwt",
	}
	if len(vars) != len(Keys()) {
		t.Fatalf("test sets %d variables for %d keys", len(vars), len(Keys()))
	}
	want := Config{
		Server: ServerConfig{
			Addr: "127.0.0.1:0", ShutdownTimeout: 3 * time.Second, ReadTimeout: 4 * time.Second, TrustedProxies: []string{"10.0.0.0/8", "127.0.0.1"},
			TLS: TLSConfig{CertFile: cert, KeyFile: key}, H2C: false,
		},
		CORS: CORSConfig{
			AllowedOrigins: []string{"http://a.test", "https://*.b.test"}, AllowCredentials: true,
			AllowedHeaders: []string{"X-One", "X-Two"}, ExposedHeaders: []string{"X-Three"}, MaxAge: time.Minute,
		},
		Stream: StreamConfig{HeartbeatInterval: 1500 * time.Millisecond, Retry: 0, WriteTimeout: 2 * time.Second, Transport: "detached", MaxStreams: 100},
		Demo:   DemoConfig{Enabled: false, TickerCount: 3, TickerInterval: 50 * time.Millisecond, MaxDuration: time.Minute, MaxTokens: 20},
		Log:    LogConfig{Level: "debug", Format: "json"},
		Hub:    HubConfig{Broker: "nats", HistorySize: 11, HistoryMaxBytes: 1000, HistoryGCPacing: false, SubscriberBuffer: 12, MaxSubscribers: 13, MaxEventBytes: 14, MaxTopicsPerSubscription: 15},
		NATS: NATSConfig{
			URL: []string{"nats://n1.test:4222", "tls://n2.test"}, CredentialsFile: creds, CAFile: cert, Stream: "EVENTS", SubjectPrefix: "acme.hub",
			Replicas: 3, Storage: "memory", PublishBatching: false, Embedded: false, StoreDir: "/var/lib/ssehub/nats",
		},
		Auth: AuthConfig{PublishTokens: []string{"p1", "p2"}, SubscribeTokens: []string{"s1"}, JWT: JWTConfig{
			HMACSecret: "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef", PublicKeyFile: pubKey, Algorithms: []string{"HS512", "ES256"},
			Issuer: "https://auth.test", Audience: "ssehub.test", Leeway: 5 * time.Second, MaxLifetime: 24 * time.Hour, CookieName: "hub_jwt",
		}},
	}
	got, err := Load([]string{"--config", os.DevNull}, env(vars))
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("got  %+v\nwant %+v", got, want)
	}

	// The embedded server is one server: it cannot go with replicas 3.
	vars["SSEHUB_NATS_EMBEDDED"], vars["SSEHUB_NATS_REPLICAS"] = "true", "1"
	want.NATS.Embedded, want.NATS.Replicas = true, 1
	if got, err = Load([]string{"--config", os.DevNull}, env(vars)); err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("with SSEHUB_NATS_EMBEDDED=true:\ngot  %+v\nwant %+v", got, want)
	}

	// h2c is cleartext HTTP/2: it cannot go with TLS.
	delete(vars, "SSEHUB_SERVER_TLS_CERT_FILE")
	delete(vars, "SSEHUB_SERVER_TLS_KEY_FILE")
	vars["SSEHUB_SERVER_H2C"] = "true"
	want.Server.TLS, want.Server.H2C = TLSConfig{}, true
	if got, err = Load([]string{"--config", os.DevNull}, env(vars)); err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("with SSEHUB_SERVER_H2C=true:\ngot  %+v\nwant %+v", got, want)
	}
}

func TestLoadEnvListReplacesFileList(t *testing.T) {
	path := writeYAML(t, `
cors:
  allowed_origins: ["http://a.test", "http://b.test"]
auth:
  publish_tokens: [one, two]
`)
	getenv := env(map[string]string{
		"SSEHUB_CORS_ALLOWED_ORIGINS": "http://c.test,http://d.test",
		"SSEHUB_AUTH_PUBLISH_TOKENS":  "three",
	})
	cfg, err := Load([]string{"--config", path}, getenv)
	if err != nil {
		t.Fatal(err)
	}
	if want := []string{"http://c.test", "http://d.test"}; !reflect.DeepEqual(cfg.CORS.AllowedOrigins, want) {
		t.Errorf("allowed_origins = %q, want %q", cfg.CORS.AllowedOrigins, want)
	}
	if want := []string{"three"}; !reflect.DeepEqual(cfg.Auth.PublishTokens, want) {
		t.Errorf("publish_tokens = %q, want %q", cfg.Auth.PublishTokens, want)
	}
}

// TestLoadNATSURL checks the spellings of nats.url: one URL, a YAML list,
// a comma-separated string.
func TestLoadNATSURL(t *testing.T) {
	for yaml, want := range map[string][]string{
		"nats:\n  url: nats://a.test:4222\n":                   {"nats://a.test:4222"},
		"nats:\n  url: [nats://a.test:4222, tls://b.test]\n":   {"nats://a.test:4222", "tls://b.test"},
		"nats:\n  url: \"nats://a.test:4222,nats://b.test\"\n": {"nats://a.test:4222", "nats://b.test"},
	} {
		cfg, err := Load([]string{"--config", writeYAML(t, yaml)}, nil)
		if err != nil {
			t.Errorf("%q: %v", yaml, err)
			continue
		}
		if !reflect.DeepEqual(cfg.NATS.URL, want) {
			t.Errorf("%q: nats.url = %q, want %q", yaml, cfg.NATS.URL, want)
		}
	}
}

// TestLoadListEmptyItem checks that an empty item in a list stops the
// start, naming the item: "a,,b" or a trailing comma in a variable is most
// often a token or an origin left out, and was dropped without a word. A
// YAML list's empty item is refused in the same words, and "," alone is
// still the empty list.
func TestLoadListEmptyItem(t *testing.T) {
	const commas = "empty item in a comma-separated list"
	for vars, want := range map[string]string{
		"SSEHUB_CORS_ALLOWED_ORIGINS=https://a.test,,https://b.test": "cors.allowed_origins[1]: " + commas,
		"SSEHUB_AUTH_PUBLISH_TOKENS=t1,t2,":                          "auth.publish_tokens[2]: " + commas,
		"SSEHUB_SERVER_TRUSTED_PROXIES= , 10.0.0.1":                  "server.trusted_proxies[0]: " + commas,
	} {
		name, value, _ := strings.Cut(vars, "=")
		_, err := Load(nil, env(map[string]string{name: value}))
		if !errors.Is(err, ErrInvalidValue) || !strings.Contains(err.Error(), want) || !strings.Contains(err.Error(), "set by "+name) {
			t.Errorf("%s: err = %v, want it to say %s, set by %s", vars, err, want, name)
		}
	}
	for yaml, want := range map[string]string{
		"cors:\n  allowed_origins: [\"\", \"https://a.test\"]\n": "cors.allowed_origins[0]: empty item in a list",
		"auth:\n  subscribe_tokens:\n    - t1\n    - \" \"\n":    "auth.subscribe_tokens[1]: empty item in a list",
		"cors:\n  allowed_origins: \"https://a.test,\"\n":        "cors.allowed_origins[1]: " + commas,
		// An item left without a value is YAML's null: it said "expected a
		// string".
		"cors:\n  allowed_origins:\n    -\n    - https://a.test\n": "cors.allowed_origins[0]: empty item in a list",
		"auth:\n  publish_tokens: [t1, ~]\n":                       "auth.publish_tokens[1]: empty item in a list",
	} {
		_, err := Load([]string{"--config", writeYAML(t, yaml)}, nil)
		if !errors.Is(err, ErrInvalidValue) || !strings.Contains(err.Error(), want) {
			t.Errorf("%q: err = %v, want it to say %s", yaml, err, want)
		}
	}
	path := writeYAML(t, "cors:\n  allowed_origins: [https://a.test]\n")
	for _, value := range []string{",", " , "} {
		cfg, err := Load([]string{"--config", path}, env(map[string]string{"SSEHUB_CORS_ALLOWED_ORIGINS": value}))
		if err != nil || cfg.CORS.AllowedOrigins == nil || len(cfg.CORS.AllowedOrigins) != 0 {
			t.Errorf("%q: origins %q, err %v, want the empty list", value, cfg.CORS.AllowedOrigins, err)
		}
	}
}

func TestLoadEmptyEnvDoesNotOverride(t *testing.T) {
	path := writeYAML(t, "stream:\n  retry: 5s\ncors:\n  allowed_origins: [\"http://a.test\"]\n")
	getenv := env(map[string]string{"SSEHUB_STREAM_RETRY": "", "SSEHUB_CORS_ALLOWED_ORIGINS": ""})
	cfg, err := Load([]string{"--config", path}, getenv)
	if err != nil {
		t.Fatal(err)
	}
	if cfg.Stream.Retry != 5*time.Second || len(cfg.CORS.AllowedOrigins) != 1 {
		t.Errorf("empty variables overrode the file: retry %v, origins %q", cfg.Stream.Retry, cfg.CORS.AllowedOrigins)
	}
}

// TestLoadEnvIsTrimmed checks that white space around an environment
// value is dropped for every key, as it was for durations and list items
// but not for words: SSEHUB_STREAM_TRANSPORT=' detached' was refused. The
// HMAC secret is the exception: its bytes are the key.
func TestLoadEnvIsTrimmed(t *testing.T) {
	secret := strings.Repeat("k", 32) + " k"
	cfg, err := Load(nil, env(map[string]string{
		"SSEHUB_STREAM_TRANSPORT":     " detached\t",
		"SSEHUB_STREAM_RETRY":         " 3s",
		"SSEHUB_LOG_LEVEL":            " warn ",
		"SSEHUB_SERVER_ADDR":          " 127.0.0.1:9001\n",
		"SSEHUB_HUB_BROKER":           "memory ",
		"SSEHUB_LOG_FORMAT":           " \t ", // white space alone: unset
		"SSEHUB_AUTH_JWT_HMAC_SECRET": secret,
	}))
	if err != nil {
		t.Fatal(err)
	}
	got := []any{cfg.Stream.Transport, cfg.Stream.Retry, cfg.Log.Level, cfg.Server.Addr, cfg.Hub.Broker, cfg.Log.Format, cfg.Auth.JWT.HMACSecret}
	want := []any{"detached", 3 * time.Second, "warn", "127.0.0.1:9001", "memory", "text", secret}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("got %q, want %q", got, want)
	}
}

// TestLoadHMACSecretWithANewline checks that an HMAC secret starting or
// ending with white space stops the start, naming the key and where it
// was set, not the value. A Secret made from a file (kubectl create secret
// --from-file, or echo's) ends with a newline, which, kept as part of the
// key, made ssehub refuse every token signed with the secret alone.
func TestLoadHMACSecretWithANewline(t *testing.T) {
	const secret = "0123456789abcdef0123456789abcdef"
	const want = "auth.jwt.hmac_secret: starts or ends with white space, a newline a file left for one, which would be part of the key: tokens signed without it would be refused; remove it (value not shown)"
	for _, value := range []string{secret + "\n", secret + "\r\n", " " + secret, secret + "\t"} {
		_, err := Load([]string{"--config", os.DevNull}, env(map[string]string{"SSEHUB_AUTH_JWT_HMAC_SECRET": value}))
		if !errors.Is(err, ErrInvalidValue) || err.Error() != want+"; set by SSEHUB_AUTH_JWT_HMAC_SECRET" {
			t.Errorf("%q: err = %v\nwant %s; set by SSEHUB_AUTH_JWT_HMAC_SECRET", value, err, want)
		}
	}
	// A YAML block scalar keeps its last newline too.
	path := writeYAML(t, "auth:\n  jwt:\n    hmac_secret: |\n      "+secret+"\n")
	if _, err := Load([]string{"--config", path}, nil); !errors.Is(err, ErrInvalidValue) || err.Error() != fmt.Sprintf("%s %q: line 3: %s", ErrConfigFile, path, want) {
		t.Errorf("YAML block scalar: err = %v\nwant %s %q: line 3: %s", err, ErrConfigFile, path, want)
	}
}

// TestLoadYAMLIsTrimmedAsEnvIs writes the same values, white space
// around them, in the YAML file (quoted) and in the environment: the
// setting must not depend on where it is written. A token written
// " tok " in YAML was kept so, and no request could match it (the bearer
// token is trimmed); the same in SSEHUB_AUTH_PUBLISH_TOKENS worked.
func TestLoadYAMLIsTrimmedAsEnvIs(t *testing.T) {
	secret := strings.Repeat("k", 32) + "\t k"
	path := writeYAML(t, `
stream:
  transport: " detached\t"
  retry: " 3s"
log:
  level: " warn "
hub:
  broker: "memory "
auth:
  publish_tokens: [" tok ", "\tother"]
  subscribe_tokens: " reader , r2 "
  jwt:
    hmac_secret: "`+strings.ReplaceAll(secret, "\t", "\\t")+`"
cors:
  allowed_origins: [" http://a.test "]
  exposed_headers: [" X-One"]
`)
	fromYAML, err := Load([]string{"--config", path}, nil)
	if err != nil {
		t.Fatalf("from YAML: %v", err)
	}
	fromEnv, err := Load(nil, env(map[string]string{
		"SSEHUB_STREAM_TRANSPORT":      " detached\t",
		"SSEHUB_STREAM_RETRY":          " 3s",
		"SSEHUB_LOG_LEVEL":             " warn ",
		"SSEHUB_HUB_BROKER":            "memory ",
		"SSEHUB_AUTH_PUBLISH_TOKENS":   " tok ,\tother",
		"SSEHUB_AUTH_SUBSCRIBE_TOKENS": " reader , r2 ",
		"SSEHUB_AUTH_JWT_HMAC_SECRET":  secret,
		"SSEHUB_CORS_ALLOWED_ORIGINS":  " http://a.test ",
		"SSEHUB_CORS_EXPOSED_HEADERS":  " X-One",
	}))
	if err != nil {
		t.Fatalf("from the environment: %v", err)
	}
	if !reflect.DeepEqual(fromYAML, fromEnv) {
		t.Errorf("from YAML:\n%+v\nfrom the environment:\n%+v", fromYAML, fromEnv)
	}
	if got := fromYAML.Auth.PublishTokens; !reflect.DeepEqual(got, []string{"tok", "other"}) {
		t.Errorf("publish tokens %q, want them trimmed", got)
	}
	if fromYAML.Auth.JWT.HMACSecret != secret {
		t.Errorf("HMAC secret %q, want it as written: its bytes are the key", fromYAML.Auth.JWT.HMACSecret)
	}
}

// TestLoadUnknownKeyLikeASecret checks that an unknown key whose name
// does not look like one (digits, more than a name's length), most likely
// a token or a secret pasted where its key belongs, is refused at its
// line without its name, in any case: the error quoted it, lowered.
func TestLoadUnknownKeyLikeASecret(t *testing.T) {
	const hidden = ": an unknown key, its name not shown: it does not look like a key's name, and may be a token or a secret written where a key belongs"
	for _, tt := range []struct{ yaml, secret, want string }{
		{"auth:\n  s3cr3tTOKENvalue123: x\n", "s3cr3tTOKENvalue123", "line 2: auth" + hidden + " (known keys in auth: publish_tokens, subscribe_tokens, jwt)"},
		{"auth:\n  publish_tokens: [a]\n  jwt:\n    Zm9vYmFyYmF6cXV4MTIzNDU2Nzg5MA:\n", "Zm9vYmFyYmF6cXV4MTIzNDU2Nzg5MA", "line 4: auth.jwt" + hidden + " (known keys in auth.jwt: "},
		{"dGhpc2lzYXRva2VuMTIzNDU2: x\n", "dGhpc2lzYXRva2VuMTIzNDU2", "line 1: an unknown key at the top level, its name not shown: it does not look like a key's name, and may be a token or a secret written where a key belongs (known sections: "},
		{"metrics:\n  c0ffee4242deadbeef: 1\n", "c0ffee4242deadbeef", "line 2: metrics" + hidden + " (known sections: "},
		// Under auth, whose names have no digit, a name with one.
		{"auth:\n  jwt:\n    hmac_secret: !!str\n    S3CRETv4lueXYZ: 1\n", "S3CRETv4lueXYZ", "line 4: auth.jwt" + hidden + " (known keys in auth.jwt: "},
		// Under auth, a name of letters alone that is no key's, nor a
		// typo of one: a passphrase, words joined as a name's are.
		{"auth:\n  correct-horse-battery-staple:\n", "correct-horse-battery-staple", "line 2: auth" + hidden + " (known keys in auth: "},
		{"auth:\n  jwt:\n    hmac_secret:\n    tr0ub4dor:\n", "tr0ub4dor", "line 4: auth.jwt" + hidden + " (known keys in auth.jwt: "},
		{"auth:\n  jwt:\n    hmac_secret:\n    squeamishossifrage: 1\n", "squeamishossifrage", "line 4: auth.jwt" + hidden + " (known keys in auth.jwt: "},
	} {
		path := writeYAML(t, tt.yaml)
		_, err := Load([]string{"--config", path}, nil)
		want := fmt.Sprintf("%s %q: %s", ErrConfigFile, path, tt.want)
		if !errors.Is(err, ErrUnknownKey) || !strings.HasPrefix(err.Error(), want) || strings.Contains(strings.ToLower(err.Error()), strings.ToLower(tt.secret)) {
			t.Errorf("%q: err = %v\nwant it to start with %s, without the name", tt.yaml, err, want)
		}
	}
	// Written twice, in one spelling or in two, it is not named either.
	for _, tt := range []struct{ yaml, secret, want string }{
		{"auth:\n  s3cr3tT0ken99: 1\n  s3cr3tT0ken99: 2\n", "s3cr3tt0ken99", "line 3: a key, its name not shown as it does not look like one, written twice (first at line 2): YAML takes a key once; keep one"},
		{"auth:\n  S3cr3tT0ken99:\n  s3cr3tt0ken99:\n", "s3cr3tt0ken99", "auth: a key, its name not shown as it does not look like one, written twice, at line 2 and at line 3: case does not count in a key, and only one would be read; keep one"},
		// A passphrase under auth, as its unknown key's name is not shown.
		{"auth:\n  jwt:\n    correct-horse-battery-staple: 1\n    correct-horse-battery-staple: 2\n", "correct-horse", "line 4: a key, its name not shown as it does not look like one, written twice (first at line 3): YAML takes a key once; keep one"},
	} {
		path := writeYAML(t, tt.yaml)
		_, err := Load([]string{"--config", path}, nil)
		want := fmt.Sprintf("%s %q: %s", ErrConfigFile, path, tt.want)
		if err == nil || !strings.Contains(err.Error(), want) || strings.Contains(strings.ToLower(err.Error()), tt.secret) {
			t.Errorf("%q: err = %v\nwant it to hold %s, without the name", tt.yaml, err, want)
		}
	}
	// Names of keys, if unknown, are shown: a typo's, a section's of
	// another program (x-common), a name with a digit (http2).
	for _, name := range []string{"publish-token", "x-common", "http2", "allowed_origin"} {
		path := writeYAML(t, "cors:\n  "+name+": 1\n")
		if _, err := Load([]string{"--config", path}, nil); err == nil || !strings.Contains(err.Error(), "line 2: cors."+name+": unknown key") {
			t.Errorf("%s: err = %v, want its name", name, err)
		}
	}
	// Under auth, a typo of a key's name, a name cut short or another
	// section's key's name is shown.
	for _, name := range []string{"publish_token", "subscribe-tokens", "jwts", "hmac", "public_key", "enabled", "jwt.hmac_secrets"} {
		path := writeYAML(t, "auth:\n  "+name+": 1\n")
		if _, err := Load([]string{"--config", path}, nil); err == nil || !strings.Contains(err.Error(), ": auth."+name+": unknown key") {
			t.Errorf("auth.%s: err = %v, want its name", name, err)
		}
	}
}

func TestLoadUnknownKey(t *testing.T) {
	tests := []struct{ yaml, want string }{
		{"stream:\n  heartbeat: 5s\n", "stream.heartbeat: unknown key"},
		{"metrics:\n  enabled: true\n", "metrics.enabled: unknown key"},
		{"server:\n  addr: \":1\"\n  port: 8080\n", "server.port: unknown key"},
		{"auth:\n  jwt:\n    secret: x\n", "auth.jwt.secret: unknown key"},
		{"verbose: true\n", "verbose: unknown key"},
		// Each on its line, each naming the file: the second did not.
		{"verbose: true\nmetrics:\n  enabled: true\n", "\n" + `config file "FILE": line 1: verbose: unknown key`},
	}
	for _, tt := range tests {
		path := writeYAML(t, tt.yaml)
		_, err := Load([]string{"--config", path}, nil)
		if !errors.Is(err, ErrUnknownKey) || !errors.Is(err, ErrConfigFile) {
			t.Errorf("%q: err = %v, want ErrUnknownKey in ErrConfigFile", tt.yaml, err)
			continue
		}
		if want := strings.ReplaceAll(tt.want, "FILE", path); !strings.Contains(err.Error(), want) {
			t.Errorf("%q: err = %q, want it to contain %q", tt.yaml, err, want)
		}
		for line := range strings.Lines(err.Error()) {
			if file := fmt.Sprintf("%s %q: ", ErrConfigFile, path); !strings.HasPrefix(line, file) {
				t.Errorf("%q: err = %q, want each line to start with %q", tt.yaml, err, file)
			}
		}
	}
}

// TestLoadKeyWrittenTwice checks that a key the file writes in two
// spellings, which viper would read as one and keep one of, stops the
// start naming both.
func TestLoadKeyWrittenTwice(t *testing.T) {
	tests := []struct{ name, yaml, want string }{
		{
			"two cases", "cors:\n  max_age: 12h\n  MAX_AGE: 1h\n",
			"cors.max_age: written twice, as cors.max_age (line 2) and as cors.MAX_AGE (line 3): case does not count in a key, and only one would be read",
		},
		{
			"dotted beside nested", "\"server.addr\": \":9001\"\nserver:\n  addr: \":9002\"\n",
			`server.addr: written twice, as "server.addr" (line 1) and as server.addr (line 3): a dotted key is the nested one, and only one would be read`,
		},
		{
			"nested beside dotted", "server:\n  addr: \":9002\"\n\"server.addr\": \":9001\"\n",
			`server.addr: written twice, as server.addr (line 2) and as "server.addr" (line 3)`,
		},
		{
			"dotted in a section", "server:\n  \"tls.cert_file\": a.pem\n  tls:\n    cert_file: b.pem\n",
			`server.tls.cert_file: written twice, as server."tls.cert_file" (line 2) and as server.tls.cert_file (line 4)`,
		},
		{
			"a section in two cases", "cors:\n  max_age: 12h\nCORS:\n  allow_credentials: true\n",
			"cors: written twice, as cors (line 1) and as CORS (line 3)",
		},
		{
			"dotted section beside nested", "\"server.tls\":\n  cert_file: a.pem\nserver:\n  tls:\n    key_file: b.pem\n",
			`server.tls: written twice, as "server.tls" (line 1) and as server.tls (line 4)`,
		},
		{
			"merged from an anchor", "x: &d\n  max_age: 1h\ncors:\n  <<: *d\n  MAX_AGE: 2h\n",
			"cors.max_age: written twice, as cors.MAX_AGE (line 5) and as cors.max_age (line 2)",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			path := writeYAML(t, tt.yaml)
			_, err := Load([]string{"--config", path}, nil)
			if !errors.Is(err, ErrDuplicateKey) || !errors.Is(err, ErrConfigFile) {
				t.Fatalf("err = %v, want ErrDuplicateKey in ErrConfigFile", err)
			}
			if !strings.Contains(err.Error(), tt.want) || !strings.Contains(err.Error(), path) {
				t.Errorf("err = %q, want it to contain %q and the file name", err, tt.want)
			}
			if n := strings.Count(err.Error(), "written twice"); n != 1 {
				t.Errorf("err = %q: %d keys written twice, want 1", err, n)
			}
		})
	}
}

// TestLoadKeyWrittenOnce checks the spellings that are one key written
// once: another case alone, a dotted key alone, a section's keys written
// partly dotted, and YAML's override of a merged key.
func TestLoadKeyWrittenOnce(t *testing.T) {
	cfg, err := Load([]string{"--config", writeYAML(t, `
CORS:
  Max_Age: 1h
"server.addr": ":9001"
server:
  "tls.cert_file": ""
  read_timeout: 3s
`)}, nil)
	if err != nil {
		t.Fatal(err)
	}
	if cfg.CORS.MaxAge != time.Hour || cfg.Server.Addr != ":9001" || cfg.Server.ReadTimeout != 3*time.Second {
		t.Errorf("max_age %v, addr %q, read_timeout %v: want 1h, :9001, 3s", cfg.CORS.MaxAge, cfg.Server.Addr, cfg.Server.ReadTimeout)
	}

	// The anchor's own section is an unknown key, and only that.
	_, err = Load([]string{"--config", writeYAML(t, "base: &base\n  retry: 4s\nstream:\n  <<: *base\n  retry: 5s\n")}, nil)
	if errors.Is(err, ErrDuplicateKey) || !strings.Contains(err.Error(), "base.retry: unknown key") || strings.Count(err.Error(), "\n") != 0 {
		t.Errorf("err = %v, want base.retry: unknown key alone", err)
	}
}

func TestLoadSectionNotAMapping(t *testing.T) {
	path := writeYAML(t, "server: 5\n")
	_, err := Load([]string{"--config", path}, nil)
	if !errors.Is(err, ErrInvalidValue) || !strings.Contains(err.Error(), "server: expected a section") {
		t.Errorf("err = %v, want server: expected a section", err)
	}
}

// TestLoadSectionNotAMappingHidesASecret checks that a value written
// where a section of secrets belongs (auth.jwt: followed by the HMAC
// secret, hmac_secret: left out) is not shown: it is most likely the
// secret, and the error goes to the log. So is one where the nats
// section belongs: most likely its server URL, whose password or token
// was shown (nats: nats://user:password@host).
func TestLoadSectionNotAMappingHidesASecret(t *testing.T) {
	const secret = "s3cr3t-0123456789-0123456789-0123456789"
	for _, tt := range []struct{ yaml, key string }{
		{"auth:\n  jwt: " + secret + "\n", "auth.jwt"},
		{"auth:\n  jwt: [" + secret + "]\n", "auth.jwt"},
		{"auth: " + secret + "\n", "auth"},
		{"nats: nats://ssehub:" + secret + "@nats.internal:4222\n", "nats"},
		{"nats: [nats://" + secret + "@a:4222, nats://" + secret + "@b:4222]\n", "nats"},
	} {
		path := writeYAML(t, tt.yaml)
		_, err := Load([]string{"--config", path}, nil)
		if want := tt.key + ": expected a section of keys (value not shown)"; !errors.Is(err, ErrInvalidValue) || !strings.Contains(err.Error(), want) || strings.Contains(err.Error(), secret) {
			t.Errorf("%q: err = %v, want %s", tt.yaml, err, want)
		}
	}
}

func TestLoadEmptySectionKeepsDefaults(t *testing.T) {
	path := writeYAML(t, "hub:\nauth:\n  jwt:\nserver:\n  addr:\n")
	cfg, err := Load([]string{"--config", path}, nil)
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(cfg, Default()) {
		t.Errorf("got %+v, want defaults", cfg)
	}
}

func TestLoadBadValues(t *testing.T) {
	tests := []struct {
		name, yaml string
		vars       map[string]string
		want       string
	}{
		{"duration in yaml", "stream:\n  retry: 3x\n", nil, `stream.retry: invalid duration "3x"`},
		{"duration in env", "", map[string]string{"SSEHUB_STREAM_RETRY": "3x"}, `stream.retry: invalid duration "3x"`},
		{"duration without unit", "cors:\n  max_age: 10\n", nil, `cors.max_age: invalid duration "10"`},
		{"int in yaml", "hub:\n  history_size: ten\n", nil, `hub.history_size: invalid integer "ten"`},
		{"fraction", "demo:\n  ticker_count: 1.5\n", nil, `demo.ticker_count: invalid integer "1.5"`},
		{"int in env", "", map[string]string{"SSEHUB_HUB_MAX_SUBSCRIBERS": "lots"}, `hub.max_subscribers: invalid integer "lots"`},
		// Written right but too large, they were "invalid": the duration
		// with its advice to "use a Go duration such as 15s", as it was.
		{"duration out of range", "", map[string]string{"SSEHUB_SERVER_SHUTDOWN_TIMEOUT": "3000000h"}, `server.shutdown_timeout: duration "3000000h" is out of range (at most about 290 years, 2562047h); set by SSEHUB_SERVER_SHUTDOWN_TIMEOUT`},
		{"duration without a number", "", map[string]string{"SSEHUB_STREAM_RETRY": ".h"}, `stream.retry: invalid duration ".h" (use a Go duration`},
		{"int out of range", "", map[string]string{"SSEHUB_HUB_HISTORY_SIZE": "99999999999999999999"}, `hub.history_size: integer "99999999999999999999" is out of range; set by SSEHUB_HUB_HISTORY_SIZE`},
		{"bool in yaml", "cors:\n  allow_credentials: yes\n", nil, `cors.allow_credentials: invalid bool "yes"`},
		{"bool in env", "", map[string]string{"SSEHUB_DEMO_ENABLED": "on"}, `demo.enabled: invalid bool "on"`},
		{"list given a mapping", "cors:\n  allowed_origins: {a: b}\n", nil, `cors.allowed_origins: expected a value, got a mapping`},
		{"list item a mapping", "auth:\n  publish_tokens: [{a: b}]\n", nil, `auth.publish_tokens[0]: expected a string`},
		// YAML reads 0123456 as the number 42798, and the token taken was
		// that text, not the one written; secrets are never shown.
		{"token a YAML number", "auth:\n  publish_tokens: [s3cret, 0123456]\n", nil, `auth.publish_tokens[1]: a YAML number or bool, not text: quote it`},
		{"subscribe token a YAML number", "auth:\n  subscribe_tokens: 0x1F\n", nil, `auth.subscribe_tokens: a YAML number or bool, not text: quote it`},
		{"secret a YAML number", "auth:\n  jwt:\n    hmac_secret: 12345678901234567890123456789012345\n", nil, `auth.jwt.hmac_secret: a YAML number or bool, not text: quote it`},
		{"scalar given a list", "log:\n  level: [debug]\n", nil, `log.level: expected a string`},
		// Said "expected a integer", and "got map[]" for an empty mapping.
		{"integer given a list", "hub:\n  history_size: [1, 2]\n", nil, `hub.history_size: expected an integer, got a list or a mapping`},
		{"list given an empty mapping", "cors:\n  allowed_origins: {}\n", nil, `cors.allowed_origins: expected a list, got a mapping`},
		{"heartbeat in env", "", map[string]string{"SSEHUB_STREAM_HEARTBEAT_INTERVAL": "15ms"}, `stream.heartbeat_interval: "15ms" must be between 1s and 24h0m0s`},
		{"history size in yaml", "hub:\n  history_size: 99999999999\n", nil, `hub.history_size: 99999999999 must be between 1 and 10000000`},
		{"validation after layering", "", map[string]string{"SSEHUB_CORS_ALLOWED_ORIGINS": "http://a/b"}, `cors.allowed_origins: "http://a/b" is not an origin`},
		// Each names where the value was written, the file or the
		// variable, as a number YAML reads as a float did.
		{"duration text in yaml", "stream:\n  retry: 0.0x\n", nil, `stream.retry: invalid duration "0.0x"`},
		{"duration text in env", "", map[string]string{"SSEHUB_STREAM_RETRY": "0.0x"}, `stream.retry: invalid duration "0.0x"`},
		{"bool number in yaml", "server:\n  h2c: 0x1\n", nil, `server.h2c: invalid bool "0x1"`},
		{"bool number in env", "", map[string]string{"SSEHUB_SERVER_H2C": "0x1"}, `server.h2c: invalid bool "0x1"`},
		{"list item a list", "auth:\n  publish_tokens: [[a]]\n", nil, `auth.publish_tokens[0]: expected a string`},
		{"empty list item in yaml", "auth:\n  publish_tokens: [s3cret, \"\"]\n", nil, `auth.publish_tokens[1]: empty item in a list`},
		{"empty list item in env", "", map[string]string{"SSEHUB_AUTH_PUBLISH_TOKENS": "s3cret,,x"}, `auth.publish_tokens[1]: empty item`},
		{"nats url in yaml", "hub:\n  broker: nats\nnats:\n  url: nats://u:1234567890123@h:x\n", nil, `nats.url: "nats://u:xxxxx@h:x" is not a NATS server URL`},
		{"nats url in env", "", map[string]string{"SSEHUB_HUB_BROKER": "nats", "SSEHUB_NATS_URL": "nats://u:1234567890123@h:x"}, `nats.url: "nats://u:xxxxx@h:x" is not a NATS server URL`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			path := writeYAML(t, tt.yaml)
			_, err := Load([]string{"--config", path}, env(tt.vars))
			if !errors.Is(err, ErrInvalidValue) {
				t.Fatalf("err = %v, want ErrInvalidValue", err)
			}
			if !strings.Contains(err.Error(), tt.want) {
				t.Errorf("err = %q, want it to contain %q", err, tt.want)
			}
			// A value of the file's names the file, as its other
			// errors do; one of a variable's names the variable.
			if file := fmt.Sprintf("%s %q: ", ErrConfigFile, path); tt.vars == nil && !strings.HasPrefix(err.Error(), file) {
				t.Errorf("err = %q, want it to start with %q", err, file)
			}
			for name := range tt.vars {
				if !strings.Contains(err.Error(), "; set by "+name) && name != "SSEHUB_HUB_BROKER" {
					t.Errorf("err = %q, want it to name %s", err, name)
				}
			}
			for _, secret := range []string{"0123456", "42798", "0x1F", "1234567890123"} {
				if strings.Contains(err.Error(), secret) {
					t.Errorf("err = %q shows a secret", err)
				}
			}
		})
	}
}

func TestLoadBadYAML(t *testing.T) {
	path := writeYAML(t, "server:\n  addr: [\n")
	_, err := Load([]string{"--config", path}, nil)
	if !errors.Is(err, ErrConfigFile) || !strings.Contains(err.Error(), path) {
		t.Errorf("err = %v, want ErrConfigFile naming %s", err, path)
	}
}

// TestLoadBadYAMLHints checks that the YAML mistakes whose parser
// message says nothing of the cause get a hint: an unquoted * (any origin,
// any header), which YAML takes for an alias, or & and a symbol (a
// secret's), an anchor, was "did not find expected alphabetic or numeric
// character", ! and one, a tag, "did not find expected whitespace or line
// break", and a tab in an indentation "found
// character that cannot start any token".
func TestLoadBadYAMLHints(t *testing.T) {
	for _, tt := range []struct{ yaml, want string }{
		{"cors:\n  allowed_origins: *\n", `line 2: did not find expected alphabetic or numeric character (a value starting with * is a YAML alias: quote it, as in "*")`},
		{"cors:\n  allowed_origins: [\"http://a.test\", *]\n", `(a value starting with * is a YAML alias: quote it, as in "*")`},
		{"cors:\n  allowed_headers:\n    - *\n", `(a value starting with * is a YAML alias: quote it, as in "*")`},
		// A & followed by what no anchor name holds (a secret's symbols)
		// is the same library message, which said nothing of the &.
		{"auth:\n  jwt:\n    hmac_secret: &$s3cr3t-0123456789-0123456789\n", `line 3: did not find expected alphabetic or numeric character (a value starting with & is a YAML anchor: quote it, as in "&...")`},
		{"auth:\n  subscribe_tokens: [a-token, &%tok]\n", `(a value starting with & is a YAML anchor: quote it, as in "&...")`},
		{"cors:\n  allowed_origins: [\"https://a.test/?a=1&b=2\", *]\n", `(a value starting with * is a YAML alias: quote it, as in "*")`},
		// A ! and what no tag holds, the same for a tag.
		{"auth:\n  jwt:\n    hmac_secret: !^s3cr3t-0123456789-0123456789\n", `line 3: did not find expected whitespace or line break (a value starting with ! is a YAML tag: quote it, as in "!...")`},
		{"auth:\n  subscribe_tokens: [a-token, !|tok]\n", `(a value starting with ! is a YAML tag: quote it, as in "!...")`},
		{"auth:\n  jwt:\n    hmac_secret: !<s3cr3t-0123456789\n", `line 3: did not find the expected '>' (a value starting with ! is a YAML tag: quote it, as in "!...")`},
		{"log:\n  level: info\nauth:\n  jwt:\n    hmac_secret: !a!s3cr3t-0123456789\n", `line 5: found undefined tag handle (a value starting with ! is a YAML tag: quote it, as in "!...")`},
		{"cors:\n\tmax_age: 1h\n", `line 2: found character that cannot start any token (YAML indents with spaces, not tabs)`},
		{"server:\n  addr: \":1\"\ncors:\n  max_age: 1h\n  allowed_origins: \"http://a.test\", 'http://b.test'\n", `line 5: did not find expected key (a list on one line is written in brackets, as in ["a", "b"])`},
	} {
		path := writeYAML(t, tt.yaml)
		_, err := Load([]string{"--config", path}, nil)
		if !errors.Is(err, ErrConfigFile) || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("%q: err = %v\nwant it to contain %s", tt.yaml, err, tt.want)
		}
	}
	// An alias where one is meant is no mistake.
	path := writeYAML(t, "cors:\n  allowed_headers: &h [X-A]\n  exposed_headers: *h\n")
	if cfg, err := Load([]string{"--config", path}, nil); err != nil || !reflect.DeepEqual(cfg.CORS.ExposedHeaders, []string{"X-A"}) {
		t.Errorf("an alias: err = %v, exposed headers %q", err, cfg.CORS.ExposedHeaders)
	}
}

// TestLoadBadYAMLNamesTheLine checks that a YAML syntax error names the
// file and the line, counted from 1, in plain words: it read "While parsing
// config: yaml: line 1: did not find expected ',' or ']'" for a bracket
// left open on line 2 (the library counts a parser error's line from 0),
// and a key written twice "yaml: unmarshal errors:\n  line 3: mapping key
// "addr" already defined at line 2", over two lines. A problem the library
// names no line for (an alias to an unknown anchor, a control character)
// was "line 1", wherever it was.
func TestLoadBadYAMLNamesTheLine(t *testing.T) {
	for _, tt := range []struct{ yaml, want string }{
		{"server:\n  addr: [\":1\"\n  read_timeout: 1s\n", `line 2: did not find expected ',' or ']'`},
		{"log:\n  level: info\ncors: {max_age: 1h\n", `line 3: did not find expected ',' or '}'`},
		{"log:\n  level: info\n- cors\n", `line 3: did not find expected key`},
		// The library names the line where the section's keys start (2),
		// not the one indented too far (3).
		{"server:\n  addr: \":1\"\n   read_timeout: 1s\n", `line 3: did not find expected key`},
		{"cors:\n  allowed_headers:\n    - X-A\n    - X-B\n    max_age: 1h\n", `line 5: did not find expected '-' indicator`},
		{"log:\n  level: info\nhub: [\n", `line 3, the end of the file: did not find expected node content`},
		{"log:\n  level: \"info\nhub: {}\n", `line 2: found unexpected end of stream`},
		{"log:\n  level: info: debug\n", `line 2: mapping values are not allowed in this context`},
		{"server:\n  addr: \":1\"\n  addr: \":2\"\n", `line 3: key "addr" written twice (first at line 2): YAML takes a key once; keep one`},
		// The library names no line for these; they were "line 1".
		{"server:\n  addr: \":1\"\nstream:\n  retry: *x\n", "line 4: " + unknownAnchor},
		{"server:\n  addr: \":1\"\n  read_timeout: 1s\x00\n", `line 3: control characters are not allowed`},
		{"log:\n  level: info\n  format: \xfftext\n", `line 3: invalid leading UTF-8 octet`},
		{"log: info: debug\nserver: {}\n", `line 1: mapping values are not allowed in this context`},
	} {
		wantFileError(t, tt.yaml, tt.want)
	}
}

// TestLoadUnknownAnchorHidesASecret checks that a token or a secret
// written unquoted with a * first, which YAML reads as an alias to an
// anchor of that name, is not quoted in the error: the library's
// "unknown anchor 'NAME' referenced" put it in the log.
func TestLoadUnknownAnchorHidesASecret(t *testing.T) {
	const secret = "s3cr3t-0123456789-0123456789-0123456789"
	for _, tt := range []struct{ yaml, line string }{
		{"auth:\n  jwt:\n    hmac_secret: *" + secret + "\n", "line 3"},
		{"auth:\n  publish_tokens:\n    - a-token\n    - *" + secret + "\n", "line 4"},
		{"auth:\n  subscribe_tokens: [a-token, *" + secret + "]\n", "line 2"},
	} {
		wantFileError(t, tt.yaml, tt.line+": "+unknownAnchor)
	}
}

// TestLoadTagThatDoesNotFitHidesASecret checks that a value tagged with
// a YAML type it is not written as (!!int over a secret's text) is
// refused without showing it, naming its line: the library's "cannot
// decode !!str `SECRET` as a !!int" put the secret in the log, at "line 1".
func TestLoadTagThatDoesNotFitHidesASecret(t *testing.T) {
	const secret = "s3cr3t-0123456789-0123456789-0123456789"
	const want = " that YAML does not read as one: drop the tag, or quote the value if it is text (value not shown, as it may be a token or a secret)"
	for _, tt := range []struct{ yaml, want string }{
		{"auth:\n  jwt:\n    hmac_secret: !!int " + secret + "\n", "line 3: a value tagged !!int" + want},
		{"auth:\n  publish_tokens:\n    - a-token\n    - !!bool " + secret + "\n", "line 4: a value tagged !!bool" + want},
		{"log:\n  level: info\nauth:\n  jwt:\n    hmac_secret: !!int |\n      " + secret + "\n", "line 5: a value tagged !!int" + want},
		{"hub:\n  broker: nats\nnats:\n  url: !!float nats://u:" + secret + "@n.test\n", "line 4: a value tagged !!float" + want},
	} {
		wantFileError(t, tt.yaml, tt.want)
	}
}

// TestLoadSecretStartingWithTagOrAnchor checks that a token or a secret
// written unquoted with a ! or a & first, which YAML reads as a tag or an
// anchor and not as part of the text, is refused without showing it: it
// was taken as what follows a space, or as no value at all, so that
// subscribe_tokens: &... left subscribing open to anyone, and
// hmac_secret: !... turned JWTs off, without a word.
func TestLoadSecretStartingWithTagOrAnchor(t *testing.T) {
	const secret = "s3cr3t-0123456789-0123456789-0123456789"
	for _, tt := range []struct{ yaml, want string }{
		{"auth:\n  subscribe_tokens: &" + secret + "\n", "auth.subscribe_tokens: starts with &, which YAML reads as an anchor, not as text: quote it"},
		{"auth:\n  publish_tokens: !" + secret + "\n", "auth.publish_tokens: starts with !, which YAML reads as a tag, not as text: quote it"},
		{"auth:\n  jwt:\n    hmac_secret: !" + secret + "\n", "auth.jwt.hmac_secret: starts with !, which YAML reads as a tag, not as text: quote it"},
		{"auth:\n  jwt:\n    hmac_secret: &a " + secret + "\n", "auth.jwt.hmac_secret: starts with &, which YAML reads as an anchor, not as text: quote it"},
		{"auth:\n  publish_tokens:\n    - a-token\n    - &" + secret + "\n", "auth.publish_tokens[1]: starts with &, which YAML reads as an anchor, not as text: quote it"},
		{"auth:\n  subscribe_tokens: [a-token, !" + secret + " b]\n", "auth.subscribe_tokens[1]: starts with !, which YAML reads as a tag, not as text: quote it"},
	} {
		path := writeYAML(t, tt.yaml)
		_, err := Load([]string{"--config", path}, nil)
		if !errors.Is(err, ErrInvalidValue) || !strings.Contains(err.Error(), tt.want) || strings.Contains(err.Error(), secret) {
			t.Errorf("%q: err = %v\nwant it to contain %s, and no secret", tt.yaml, err, tt.want)
		}
	}
	// An anchor an alias uses, and a tag saying text, are meant.
	for _, yaml := range []string{
		"auth:\n  publish_tokens: &t [" + secret + "]\n  subscribe_tokens: *t\n",
		"auth:\n  publish_tokens: !!seq &unused\n    - " + secret + "\n",
		"auth:\n  jwt:\n    hmac_secret: &s " + secret + "\n  publish_tokens: [*s]\n",
		"auth:\n  jwt:\n    hmac_secret: !!str " + secret + "\n",
		"auth:\n  jwt:\n    hmac_secret: !!binary czNjcjN0LTAxMjM0NTY3ODktMDEyMzQ1Njc4OS0wMTIzNDU2Nzg5\n",
	} {
		path := writeYAML(t, yaml)
		if _, err := Load([]string{"--config", path}, nil); err != nil {
			t.Errorf("%q: %v", yaml, err)
		}
	}
}

// TestLoadValueStartingWithTagOrAnchor checks that a value other than a
// secret written unquoted with a ! or a & first is refused, showing what
// was written: YAML took the tag or the anchor out of it, so that
// level: &debug was no value, the default, and allowed_origins: &x an
// empty list, without a word.
func TestLoadValueStartingWithTagOrAnchor(t *testing.T) {
	for _, tt := range []struct{ yaml, want string }{
		{"log:\n  level: &debug\n", `log.level: "&debug" starts with &, which YAML reads as an anchor, not as text: quote it`},
		{"cors:\n  allowed_origins: &x\n", `cors.allowed_origins: "&x" starts with &, which YAML reads as an anchor, not as text: quote it`},
		{"cors:\n  allowed_origins: [https://a.example, &b https://b.example]\n", `cors.allowed_origins[1]: "&b https://b.example" starts with &`},
		{"stream:\n  retry: !x 5s\n", `stream.retry: "!x 5s" starts with !, which YAML reads as a tag, not as text: quote it`},
		{"hub:\n  max_subscribers: &n 100\n", `hub.max_subscribers: "&n 100" starts with &`},
		{"demo:\n  enabled: !off\n", `demo.enabled: "!off" starts with !`},
		// A URL's password is not shown.
		{"hub:\n  broker: nats\nnats:\n  url: [&n nats://u:s3cret@n.test]\n", `nats.url[0]: "&n nats://u:xxxxx@n.test" starts with &`},
		{"hub:\n  broker: nats\nnats:\n  url: !u:s3cret@n.test\n", `nats.url: "!u:xxxxx@n.test" starts with !`},
		// What was written, not the parts YAML made of it: the anchor
		// nats and the value ://u:s3cret@n.test.
		{"hub:\n  broker: nats\nnats:\n  url: &nats://u:s3cret@n.test\n", `nats.url: "&nats://u:xxxxx@n.test" starts with &`},
		{"stream:\n  retry: !x   5s # a comment\n", `stream.retry: "!x   5s" starts with !`},
		// !! and a name YAML does not know is no YAML type: the value was
		// no stream name at all, the default.
		{"hub:\n  broker: nats\nnats:\n  url: nats://n.test\n  stream: !!prod\n", `nats.stream: "!!prod" starts with !, which YAML reads as a tag, not as text: quote it`},
		{"cors:\n  allowed_origins: [!!x https://a.example]\n", `cors.allowed_origins[0]: "!!x https://a.example" starts with !`},
	} {
		path := writeYAML(t, tt.yaml)
		_, err := Load([]string{"--config", path}, nil)
		if !errors.Is(err, ErrInvalidValue) || !strings.Contains(err.Error(), tt.want) || strings.Contains(err.Error(), "s3cret") {
			t.Errorf("%q: err = %v\nwant it to contain %s", tt.yaml, err, tt.want)
		}
	}
	// An anchor an alias uses, and YAML's own tags, are meant.
	for _, yaml := range []string{
		"log:\n  level: &l info\nnats:\n  stream: *l\n",
		"stream:\n  retry: !!str 5s\n",
		"hub:\n  max_subscribers: !!int 100\n",
		"demo:\n  enabled: !!bool true\n",
		"nats:\n  stream: !<tag:yaml.org,2002:str> events\n",
		"cors:\n  allowed_origins: &o [https://a.example]\n",
	} {
		path := writeYAML(t, yaml)
		if _, err := Load([]string{"--config", path}, nil); err != nil {
			t.Errorf("%q: %v", yaml, err)
		}
	}
}

// unknownAnchor is the problem of an alias to an anchor the file does
// not define, whose name is not shown.
const unknownAnchor = "unknown anchor referenced (a value starting with * is a YAML alias: quote it if it is text; its name is not shown, as it may be a token or a secret)"

// wantFileError loads a config file of yaml and checks that it is refused
// with want, after the file's name.
func wantFileError(t *testing.T, yaml, want string) {
	t.Helper()
	path := writeYAML(t, yaml)
	_, err := Load([]string{"--config", path}, nil)
	if want := fmt.Sprintf("config file %q: %s", path, want); !errors.Is(err, ErrConfigFile) || err.Error() != want {
		t.Errorf("%q: err = %v\nwant %s", yaml, err, want)
	}
}

// TestLoadBadYAMLTabLine checks that a tab indenting a line is reported
// at its line: YAML names the line where the value before it starts ("line
// 2" for a tab on line 3 after level: info, or on line 5 after a block
// scalar's |).
func TestLoadBadYAMLTabLine(t *testing.T) {
	for _, tt := range []struct{ yaml, want string }{
		{"log:\n  level: info\n\tformat: json\n", `line 3: found a tab character that violates indentation`},
		{"log:\n  level: info\n\n\tformat: json\n", `line 4: found a tab character that violates indentation`},
		{"log:\n  level: |\n    info\n\n\tformat: json\n", `line 5: found a tab character where an indentation space is expected`},
	} {
		wantFileError(t, tt.yaml, tt.want)
	}
}

// TestLoadBadYAMLLineCRLineEnds checks the line of a YAML mistake in a
// file whose lines end in a carriage return alone (an old Mac editor's),
// which YAML counts as lines: every mistake was "line 1, the end of the
// file", the file being one line to a count of newlines.
func TestLoadBadYAMLLineCRLineEnds(t *testing.T) {
	for _, tt := range []struct{ yaml, want string }{
		{"server:\r  addr: \":1\"\r   read_timeout: 1s\r", `line 3: did not find expected key`},
		{"log:\r  level: info\rhub: [\r", `line 3, the end of the file: did not find expected node content`},
		{"log:\r  level: info: debug\r", `line 2: mapping values are not allowed in this context`},
		{"log:\r\n  level: \"info\"\r\n   format: json\r\n", `line 3: did not find expected key`},
	} {
		wantFileError(t, tt.yaml, tt.want)
	}
}

// TestLoadBadYAMLLineInALargeFile checks that the line of a mistake far
// below its section's start is found without reading the file once for
// each line in between: a key indented too far under a list of 10,000
// tokens took minutes to report, as long as the start-up was held.
func TestLoadBadYAMLLineInALargeFile(t *testing.T) {
	const tokens = 10000
	var b strings.Builder
	b.WriteString("auth:\n  subscribe_tokens:\n")
	for i := range tokens {
		fmt.Fprintf(&b, "    - token%d\n", i)
	}
	b.WriteString("  publish_tokens: [writer]\n   bad: x\n")
	path := writeYAML(t, b.String())
	done := make(chan error, 1)
	go func() {
		_, err := Load([]string{"--config", path}, nil)
		done <- err
	}()
	select {
	case err := <-done:
		if want := fmt.Sprintf("config file %q: line %d: did not find expected key", path, tokens+4); err == nil || err.Error() != want {
			t.Errorf("err = %v\nwant %s", err, want)
		}
	case <-time.After(20 * time.Second): // a few hundred milliseconds are enough
		t.Fatal("Load still runs after 20s")
	}
}

// TestLoadConfigFlagTwice checks that a second --config stops the start:
// one file is read, and pflag took the last without a word, so
// --config base.yaml --config prod.yaml ran without base.yaml, its tokens
// and origins among its keys. Other flags given twice keep the last, as
// is usual, for a wrapper's flags to be overridden.
func TestLoadConfigFlagTwice(t *testing.T) {
	base := writeYAML(t, "auth:\n  subscribe_tokens: [reader]\n")
	prod := writeYAML(t, "server:\n  addr: \":9004\"\n")
	_, err := Load([]string{"--config", base, "--config=" + prod}, nil)
	want := fmt.Sprintf("--config given 2 times (%q, %q): ssehub reads one file, and would ignore all but the last; merge them into one", base, prod)
	if !errors.Is(err, ErrUsage) || !strings.Contains(err.Error(), want) {
		t.Errorf("err = %v, want ErrUsage saying %s", err, want)
	}
	cfg, err := Load([]string{"--config", prod, "--addr", ":1", "--addr", ":2"}, nil)
	if err != nil || cfg.Server.Addr != ":2" {
		t.Errorf("--addr twice: addr %q, err %v, want the last, :2", cfg.Server.Addr, err)
	}
}

// TestLoadConfigFileADirectory checks that a directory given as the file
// is named once: the message read `config file "conf": read conf: is a
// directory`.
func TestLoadConfigFileADirectory(t *testing.T) {
	dir := t.TempDir()
	_, err := Load([]string{"--config", dir}, nil)
	if want := fmt.Sprintf("config file %q: is a directory", dir); !errors.Is(err, ErrConfigFile) || err == nil || err.Error() != want {
		t.Errorf("err = %v, want %s", err, want)
	}
}

// TestLoadConfigFileThatNeverEnds checks that a file that never ends
// (--config /dev/zero, a typo for /dev/null) is refused once longer than
// any configuration: it was read until the process ran out of memory.
func TestLoadConfigFileThatNeverEnds(t *testing.T) {
	const yaml = "log:\n  level: debug\n# "
	long := writeYAML(t, yaml+strings.Repeat("x", maxConfigBytes+1-len(yaml)))
	for _, path := range []string{"/dev/zero", "/dev/urandom", long} {
		if _, err := os.Stat(path); err != nil {
			t.Skip(err)
		}
		_, err := Load([]string{"--config", path}, nil)
		if want := fmt.Sprintf("config file %q: longer than 4 MiB", path); !errors.Is(err, ErrConfigFile) || err == nil || !strings.HasPrefix(err.Error(), want) {
			t.Errorf("err = %v, want %s", err, want)
		}
	}
}

// TestLoadUnusedNATSKeys checks that a nats key the configuration leaves
// unused is unchecked in its type too, as in its value: with the memory
// broker, SSEHUB_NATS_REPLICAS=three stopped the start, while
// SSEHUB_NATS_REPLICAS=9 did not.
func TestLoadUnusedNATSKeys(t *testing.T) {
	vars := map[string]string{"SSEHUB_NATS_REPLICAS": "three", "SSEHUB_NATS_PUBLISH_BATCHING": "maybe"}
	path := writeYAML(t, "nats:\n  stream: [a, b]\n  store_dir: [a, b]\n")
	if _, err := Load([]string{"--config", path}, env(vars)); err != nil {
		t.Errorf("memory broker: %v", err)
	}
	vars["SSEHUB_HUB_BROKER"] = "nats"
	_, err := Load([]string{"--config", path}, env(vars))
	for _, want := range []string{
		`nats.replicas: invalid integer "three"; set by SSEHUB_NATS_REPLICAS`,
		`nats.publish_batching: invalid bool "maybe"`,
		`nats.stream: expected a string, got a list or a mapping`,
	} {
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("nats broker: err = %v, want it to say %s", err, want)
		}
	}
	if err != nil && strings.Contains(err.Error(), "nats.store_dir") {
		t.Errorf("nats broker, not embedded: err = %v names nats.store_dir, which it does not use", err)
	}
}

// TestLoadUnusedNATSKeysInFile checks that how the file writes a nats key
// the configuration leaves unused is unchecked too: with the memory
// broker, a mapping for nats.url or a number for nats.stream stopped the
// start, while a list for nats.stream did not. With hub.broker: nats, or
// nats.embedded: true for nats.store_dir, they stop it; an unknown key
// under nats stops it whatever the broker.
func TestLoadUnusedNATSKeysInFile(t *testing.T) {
	const file = "nats:\n  url: {a: b}\n  stream: 0123\n  replicas: 010\n  subject_prefix: [1.50]\n  store_dir: 0123\n"
	path := writeYAML(t, file)
	if _, err := Load([]string{"--config", path}, nil); err != nil {
		t.Errorf("memory broker: %v", err)
	}
	vars := map[string]string{"SSEHUB_HUB_BROKER": "nats"}
	_, err := Load([]string{"--config", path}, env(vars))
	for _, want := range []string{
		"nats.url: expected a value, got a mapping",
		`nats.stream: YAML reads 0123 as 83, not as the text "0123": quote it`,
		"nats.replicas: YAML reads 010 as the octal 8",
	} {
		if !errors.Is(err, ErrConfigFile) || !strings.Contains(err.Error(), want) {
			t.Errorf("nats broker: err = %v, want it to say %s", err, want)
		}
	}
	if err != nil && strings.Contains(err.Error(), "nats.store_dir") {
		t.Errorf("nats broker, not embedded: err = %v names nats.store_dir, which it does not use", err)
	}
	vars["SSEHUB_NATS_EMBEDDED"] = "true"
	_, err = Load([]string{"--config", path}, env(vars))
	if want := `nats.store_dir: YAML reads 0123 as 83`; err == nil || !strings.Contains(err.Error(), want) || strings.Contains(err.Error(), "nats.url") {
		t.Errorf("embedded: err = %v, want it to say %s and not name nats.url", err, want)
	}
	_, err = Load([]string{"--config", writeYAML(t, "nats:\n  steam: x\n")}, nil)
	if !errors.Is(err, ErrUnknownKey) {
		t.Errorf("unknown nats key, memory broker: err = %v, want ErrUnknownKey", err)
	}
}

func TestLoadMissingConfigFile(t *testing.T) {
	path := filepath.Join(t.TempDir(), "absent.yaml")
	_, err := Load([]string{"--config", path}, nil)
	if !errors.Is(err, fs.ErrNotExist) || !errors.Is(err, ErrConfigFile) || !strings.Contains(err.Error(), path) {
		t.Errorf("err = %v, want a not-exist ErrConfigFile naming %s", err, path)
	}
}

// TestLoadDefaultFile checks that, without --config, DefaultFile is read
// from the working directory when present, and skipped when absent.
func TestLoadDefaultFile(t *testing.T) {
	dir := t.TempDir()
	t.Chdir(dir)

	cfg, err := Load(nil, nil)
	if err != nil {
		t.Fatalf("without %s: %v", DefaultFile, err)
	}
	if !reflect.DeepEqual(cfg, Default()) {
		t.Errorf("without %s: got %+v, want defaults", DefaultFile, cfg)
	}

	if err := os.MkdirAll(filepath.Join(dir, "config"), 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, DefaultFile), []byte("server:\n  addr: \":9003\"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	cfg, err = Load(nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	if cfg.Server.Addr != ":9003" {
		t.Errorf("server.addr = %q, want the default file's :9003", cfg.Server.Addr)
	}

	// A script's --config "$CFG" with CFG unset: the server ran on the
	// built-in defaults, this file beside it unread, without a word.
	for _, args := range [][]string{{"--config", ""}, {"--config="}} {
		_, err = Load(args, nil)
		if !errors.Is(err, ErrUsage) || !strings.Contains(err.Error(), `--config ""`) || !strings.Contains(err.Error(), DefaultFile) {
			t.Errorf("%q: err = %v, want ErrUsage naming --config \"\" and %s", args, err, DefaultFile)
		}
	}

	// An empty file is how to ask for the built-in defaults alone.
	cfg, err = Load([]string{"--config", os.DevNull}, nil)
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(cfg, Default()) {
		t.Errorf("--config %s: got %+v, want defaults", os.DevNull, cfg)
	}
}

// TestLoadDefaultFileDanglingLink checks that a DefaultFile that is a
// symbolic link to a file that is not there (a mount or a secret that is
// missing) stops start-up naming it, rather than counting as no file: the
// server ran on the built-in defaults, demo open and no tokens, without a
// word about the file it was meant to read.
func TestLoadDefaultFileDanglingLink(t *testing.T) {
	dir := t.TempDir()
	t.Chdir(dir)
	if err := os.MkdirAll(filepath.Join(dir, "config"), 0o700); err != nil {
		t.Fatal(err)
	}
	target := filepath.Join(dir, "secrets", "ssehub.yaml")
	if err := os.Symlink(target, filepath.Join(dir, DefaultFile)); err != nil {
		t.Skip("no symbolic links here:", err)
	}
	_, err := Load(nil, nil)
	if !errors.Is(err, fs.ErrNotExist) || !errors.Is(err, ErrConfigFile) || !strings.Contains(err.Error(), DefaultFile) {
		t.Errorf("err = %v, want a not-exist ErrConfigFile naming %s", err, DefaultFile)
	}
}

func TestLoadHelp(t *testing.T) {
	for _, arg := range []string{"-h", "--help"} {
		_, err := Load([]string{arg}, nil)
		if !errors.Is(err, pflag.ErrHelp) {
			t.Errorf("%s: err = %v, want pflag.ErrHelp", arg, err)
			continue
		}
		var help *HelpError
		if !errors.As(err, &help) {
			t.Fatalf("%s: err is %T, want *HelpError", arg, err)
		}
		for _, want := range []string{"--config", "--addr", "--log-level", "--log-format", "SSEHUB_", "ssehub healthcheck", "ssehub token"} {
			if !strings.Contains(help.Usage, want) {
				t.Errorf("%s: usage lacks %q:\n%s", arg, want, help.Usage)
			}
		}
	}
}

func TestLoadBadCommandLine(t *testing.T) {
	for _, args := range [][]string{{"--bogus"}, {"extra"}, {"--addr"}} {
		_, err := Load(args, nil)
		if !errors.Is(err, ErrUsage) {
			t.Errorf("%q: err = %v, want ErrUsage", args, err)
		}
	}
}

// TestLoadSubcommandAfterFlags checks that a subcommand written after
// the flags, which Load sees as an argument, is named as one: "unexpected
// argument" alone did not say that it goes first.
func TestLoadSubcommandAfterFlags(t *testing.T) {
	for _, sub := range []string{"healthcheck", "token"} {
		_, err := Load([]string{"--config", os.DevNull, sub}, nil)
		if want := "the subcommand " + sub + " comes first: ssehub " + sub + " [flags]"; !errors.Is(err, ErrUsage) || !strings.Contains(err.Error(), want) {
			t.Errorf("err = %v, want ErrUsage saying %q", err, want)
		}
	}
}

// TestLoadSeveralDocuments checks that a file of several YAML documents,
// of which viper would read the first alone, stops the start naming the
// file and the line of the document that would be ignored.
func TestLoadSeveralDocuments(t *testing.T) {
	tests := []struct{ name, yaml, want string }{
		{"auth in a second document", "server:\n  addr: \":9001\"\n---\nauth:\n  subscribe_tokens: [s3cret]\n", "a second YAML document starts at line 3"},
		{"an unknown key in a second document", "server:\n  addr: \":9001\"\n---\nverbose: true\n", "a second YAML document starts at line 3"},
		{"three documents", "---\nserver:\n  addr: \":9001\"\n---\nlog:\n  level: warn\n---\nhub:\n  history_size: 5\n", "a second YAML document starts at line 4"},
		{"an empty first document", "---\n---\nauth:\n  subscribe_tokens: [s3cret]\n", "a second YAML document starts at line 2"},
		{"a null document", "server:\n  addr: \":9001\"\n--- ~\n", "a second YAML document starts at line 3"},
		{"bad YAML in a second document", "server:\n  addr: \":9001\"\n---\nauth: [\n", "line 4, the end of the file: did not find expected node content"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			path := writeYAML(t, tt.yaml)
			_, err := Load([]string{"--config", path}, nil)
			if !errors.Is(err, ErrConfigFile) {
				t.Fatalf("err = %v, want ErrConfigFile", err)
			}
			if !strings.Contains(err.Error(), tt.want) || !strings.Contains(err.Error(), path) {
				t.Errorf("err = %q, want it to contain %q and the file name", err, tt.want)
			}
			if strings.Contains(err.Error(), "s3cret") {
				t.Errorf("err = %q names a token", err)
			}
		})
	}

	// A --- that opens the one document, and an empty document after it
	// (a lone --- at the end, or comments only), are harmless.
	for _, yml := range []string{
		"---\nserver:\n  addr: \":9001\"\n",
		"server:\n  addr: \":9001\"\n---\n",
		"server:\n  addr: \":9001\"\n---\n# auth:\n#   subscribe_tokens: [s3cret]\n",
		"server:\n  addr: \":9001\"\n...\n---\n...\n",
	} {
		cfg, err := Load([]string{"--config", writeYAML(t, yml)}, nil)
		if err != nil || cfg.Server.Addr != ":9001" {
			t.Errorf("%q: addr %q, err %v; want :9001 and no error", yml, cfg.Server.Addr, err)
		}
	}
}

// TestLoadErrorNamesItsSource checks that a bad value set by an
// environment variable or a flag is reported with that variable or flag
// after the problem: the user looking for it set no key of that name; one
// set by the file names the file first, as the file's other errors do.
func TestLoadErrorNamesItsSource(t *testing.T) {
	_, err := Load([]string{"--config", os.DevNull}, env(map[string]string{"SSEHUB_STREAM_RETRY": "3x"}))
	if want := `stream.retry: invalid duration "3x" (use a Go duration such as 15s or 1500ms); set by SSEHUB_STREAM_RETRY`; err == nil || err.Error() != want {
		t.Errorf("err = %v\nwant %s", err, want)
	}
	path := writeYAML(t, "stream:\n  write_timeout: 0s\nhub:\n  history_size: 0\n")
	vars := map[string]string{
		"SSEHUB_SERVER_ADDR":          ":1",
		"SSEHUB_LOG_LEVEL":            "loud",
		"SSEHUB_CORS_ALLOWED_ORIGINS": "http://a.test/path",
	}
	_, err = Load([]string{"--config", path, "--addr", "nowhere", "--log-format", "xml"}, env(vars))
	if !errors.Is(err, ErrInvalidValue) {
		t.Fatalf("err = %v, want ErrInvalidValue", err)
	}
	lines := strings.Split(err.Error(), "\n")
	for _, want := range []string{
		`server.addr: "nowhere" is not host:port with a port 0-65535 (e.g. ":8111"); set by --addr`, // the flag wins over the variable
		`log.level: "loud" must be one of debug, info, warn, error; set by SSEHUB_LOG_LEVEL`,
		`log.format: "xml" must be one of text, json; set by --log-format`,
		`cors.allowed_origins: "http://a.test/path" is not an origin (no path, query or fragment allowed); set by SSEHUB_CORS_ALLOWED_ORIGINS`,
		fmt.Sprintf(`%s %q: line 2: stream.write_timeout: "0s" must be between 1s and 24h0m0s`, ErrConfigFile, path), // from the file: its line
		fmt.Sprintf(`%s %q: line 4: hub.history_size: 0 must be between 1 and 10000000 (its ring is allocated at start, 32 bytes a slot: 320 MB at most)`, ErrConfigFile, path),
	} {
		if !slices.Contains(lines, want) {
			t.Errorf("err = %q\nwant a line %q", err, want)
		}
	}
	// A list's item is named by index, and by the variable the list came
	// from; a token's value is never shown.
	vars = map[string]string{"SSEHUB_AUTH_PUBLISH_TOKENS": "good,bad token"}
	_, err = Load([]string{"--config", os.DevNull}, env(vars))
	if want := "auth.publish_tokens[1]: token contains whitespace (value not shown); set by SSEHUB_AUTH_PUBLISH_TOKENS"; err == nil || err.Error() != want {
		t.Errorf("err = %v\nwant %s", err, want)
	}
	var ke *KeyError
	if !errors.As(err, &ke) || ke.Key != "auth.publish_tokens[1]" {
		t.Errorf("err = %v: its KeyError's Key is not the key alone", err)
	}
}

// TestLoadEnvQuotedValue checks that a variable whose value is wrapped in
// quotes stops the start. A variable keeps quotes as part of its value
// (docker run --env-file does not remove them): SSEHUB_AUTH_PUBLISH_TOKENS="s3cret"
// made the token "s3cret" with its quotes, which no client sends, and
// SSEHUB_AUTH_JWT_ISSUER, SSEHUB_NATS_STREAM or SSEHUB_NATS_STORE_DIR were
// taken with them as silently. The nats keys are used with hub.broker:
// nats, nats.store_dir with nats.embedded: true
// (TestLoadEnvQuotedValueOfAnUnusedKey).
func TestLoadEnvQuotedValue(t *testing.T) {
	for name, value := range map[string]string{
		"SSEHUB_AUTH_PUBLISH_TOKENS":  `"s3cret"`,
		"SSEHUB_AUTH_JWT_HMAC_SECRET": `'` + strings.Repeat("s3cret", 6) + `'`,
		"SSEHUB_NATS_STREAM":          `"EVENTS"`,
		"SSEHUB_NATS_STORE_DIR":       ` '/var/lib/ssehub' `,
	} {
		vars := map[string]string{name: value, "SSEHUB_HUB_BROKER": "nats", "SSEHUB_NATS_EMBEDDED": "true"}
		_, err := Load([]string{"--config", os.DevNull}, env(vars))
		if !errors.Is(err, ErrInvalidValue) || !strings.Contains(err.Error(), "wrapped in quotes") || !strings.HasSuffix(err.Error(), "; set by "+name) {
			t.Errorf("%s=%s: err = %v, want one saying the value is wrapped in quotes, naming the variable", name, value, err)
		}
		if err != nil && strings.Contains(err.Error(), "s3cret") {
			t.Errorf("%s: err = %q shows the value", name, err)
		}
	}
	// Quotes inside a value, or on one side only, are the value's.
	cfg, err := Load([]string{"--config", os.DevNull}, env(map[string]string{"SSEHUB_NATS_STREAM": `A"B"`, "SSEHUB_AUTH_PUBLISH_TOKENS": `"a,b"c`}))
	if err != nil || cfg.NATS.Stream != `A"B"` || !reflect.DeepEqual(cfg.Auth.PublishTokens, []string{`"a`, `b"c`}) {
		t.Errorf("err = %v, stream %q, tokens %q", err, cfg.NATS.Stream, cfg.Auth.PublishTokens)
	}
}

// TestLoadEnvQuotedValueOverAFileKey checks that quotes around a
// variable's value are blamed on the variable alone when the file sets
// its key too: the message started with config file "PATH": (the file's
// list of origins, where compose's SSEHUB_CORS_ALLOWED_ORIGINS="..." in
// an env file was the culprit), sending the reader to a file that was
// fine.
func TestLoadEnvQuotedValueOverAFileKey(t *testing.T) {
	path := writeYAML(t, "cors:\n  allowed_origins: [\"http://localhost:5173\"]\n")
	vars := map[string]string{"SSEHUB_CORS_ALLOWED_ORIGINS": `"http://localhost:8080"`}
	_, err := Load([]string{"--config", path}, env(vars))
	want := "cors.allowed_origins: the value is wrapped in quotes, which a variable keeps as part of it " +
		"(docker run --env-file does not remove them): remove them (value not shown); set by SSEHUB_CORS_ALLOWED_ORIGINS"
	if !errors.Is(err, ErrInvalidValue) || err.Error() != want {
		t.Errorf("err = %v\nwant %s", err, want)
	}
}

// TestLoadEnvQuotedValueUnderAFlag checks that quotes around a variable's
// value do not stop the start when a flag sets its key: the flag
// overrides the variable, which is not read, and SSEHUB_LOG_LEVEL="debug"
// stopped a start with --log-level info where SSEHUB_LOG_LEVEL=loud did
// not.
func TestLoadEnvQuotedValueUnderAFlag(t *testing.T) {
	for _, value := range []string{`"debug"`, "loud"} {
		vars := map[string]string{"SSEHUB_LOG_LEVEL": value, "SSEHUB_SERVER_ADDR": `":9000"`}
		cfg, err := Load([]string{"--config", os.DevNull, "--log-level", "warn", "--addr", "127.0.0.1:0"}, env(vars))
		if err != nil || cfg.Log.Level != "warn" || cfg.Server.Addr != "127.0.0.1:0" {
			t.Errorf("SSEHUB_LOG_LEVEL=%s under --log-level warn: err = %v, log.level %q, server.addr %q", value, err, cfg.Log.Level, cfg.Server.Addr)
		}
	}
}

// TestLoadFileValueOverridden checks that how the file writes a value a
// variable or a flag overrides, unread, does not stop the start, as the
// value itself does not: history_size: 010 (octal to YAML) stopped a
// start with SSEHUB_HUB_HISTORY_SIZE=10, where history_size: ten did
// not. A key the file does not know still does.
func TestLoadFileValueOverridden(t *testing.T) {
	vars := map[string]string{"SSEHUB_HUB_HISTORY_SIZE": "10", "SSEHUB_NATS_STREAM": "EVENTS", "SSEHUB_CORS_ALLOWED_HEADERS": "X-A"}
	for _, file := range []string{
		"hub:\n  history_size: 010\n",
		"hub:\n  history_size: ten\n",
		"hub:\n  history_size: 1e3\n",
		"hub:\n  history_size: {a: 1}\n",
		"hub:\n  broker: nats\nnats:\n  stream: 0123\n",
		"cors:\n  allowed_headers: [X-A, 0x1F]\n",
		"server:\n  addr: 0123\n",
	} {
		cfg, err := Load([]string{"--config", writeYAML(t, file), "--addr", "127.0.0.1:0"}, env(vars))
		if err != nil || cfg.Hub.HistorySize != 10 {
			t.Errorf("%q: err = %v, hub.history_size %d", file, err, cfg.Hub.HistorySize)
		}
	}
	_, err := Load([]string{"--config", writeYAML(t, "hub:\n  history_size: 010\n  histroy: 1\n")}, env(vars))
	if !errors.Is(err, ErrUnknownKey) || strings.Contains(err.Error(), "octal") {
		t.Errorf("err = %v, want the unknown key alone", err)
	}
}

// TestLoadEnvQuotedValueOfAnUnusedKey checks that quotes around the value
// of a key the configuration leaves unused do not stop the start, as
// nothing else about that value does: SSEHUB_NATS_STREAM="EVENTS", left
// in an env file beside hub.broker: memory, stopped it, while
// SSEHUB_NATS_REPLICAS=three did not. Used, it stops the start.
func TestLoadEnvQuotedValueOfAnUnusedKey(t *testing.T) {
	vars := map[string]string{
		"SSEHUB_NATS_STREAM":    `"EVENTS"`,
		"SSEHUB_NATS_URL":       `'nats://a:4222'`,
		"SSEHUB_NATS_STORE_DIR": `"/var/lib/ssehub"`,
	}
	if _, err := Load([]string{"--config", os.DevNull}, env(vars)); err != nil {
		t.Errorf("memory broker: %v", err)
	}
	vars["SSEHUB_HUB_BROKER"] = "nats"
	_, err := Load([]string{"--config", os.DevNull}, env(vars))
	for _, want := range []string{"nats.stream: the value is wrapped in quotes", "nats.url: the value is wrapped in quotes"} {
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("nats broker: err = %v, want it to say %s", err, want)
		}
	}
	if err != nil && strings.Contains(err.Error(), "nats.store_dir") {
		t.Errorf("nats broker, not embedded: err = %v names nats.store_dir, which it does not use", err)
	}
}

// TestLoadErrorNamesTheOtherKeysSource checks that a problem between two
// keys names the variable or flag that set the other key too: with
// SSEHUB_STREAM_MAX_STREAMS=10 the error is hub.max_subscribers', whose
// default no variable set, and named no variable at all.
func TestLoadErrorNamesTheOtherKeysSource(t *testing.T) {
	for _, tc := range []struct {
		vars map[string]string
		file string // the YAML file's content, "" for none
		want string // FILE: the file's name, quoted
	}{
		{
			// The key left at its default is named under the file
			// that set the other, at the other's line.
			file: "stream:\n  max_streams: 10\n",
			want: "config file FILE: line 2 (stream.max_streams): hub.max_subscribers: 20000 is above stream.max_streams (10), which caps every stream, subscriptions included",
		},
		{
			// The key set by its variable: the file's part, the other
			// key, is named at its line.
			vars: map[string]string{"SSEHUB_CORS_ALLOWED_ORIGINS": "*"},
			file: "server:\n  addr: \":8111\"\ncors:\n  allow_credentials: true\n",
			want: `config file FILE: line 4 (cors.allow_credentials): cors.allowed_origins: "*" cannot be combined with cors.allow_credentials: true (list the origins instead); set by SSEHUB_CORS_ALLOWED_ORIGINS`,
		},
		{
			vars: map[string]string{"SSEHUB_STREAM_MAX_STREAMS": "10"},
			want: "hub.max_subscribers: 20000 is above stream.max_streams (10), which caps every stream, subscriptions included; stream.max_streams set by SSEHUB_STREAM_MAX_STREAMS",
		},
		{
			vars: map[string]string{"SSEHUB_HUB_MAX_SUBSCRIBERS": "30", "SSEHUB_STREAM_MAX_STREAMS": "20"},
			want: "hub.max_subscribers: 30 is above stream.max_streams (20), which caps every stream, subscriptions included; set by SSEHUB_HUB_MAX_SUBSCRIBERS; stream.max_streams set by SSEHUB_STREAM_MAX_STREAMS",
		},
		{
			vars: map[string]string{"SSEHUB_DEMO_MAX_DURATION": "5s"},
			want: "demo.ticker_count: 10 × demo.ticker_interval 1s = 10s is above demo.max_duration (5s): GET /stream without a query would be refused; demo.max_duration set by SSEHUB_DEMO_MAX_DURATION",
		},
		{
			vars: map[string]string{"SSEHUB_CORS_ALLOW_CREDENTIALS": "true"},
			file: "cors:\n  allowed_origins: [\"*\"]\n",
			want: `config file FILE: line 2: cors.allowed_origins: "*" cannot be combined with cors.allow_credentials: true (list the origins instead); cors.allow_credentials set by SSEHUB_CORS_ALLOW_CREDENTIALS`,
		},
		{
			vars: map[string]string{"SSEHUB_HUB_MAX_EVENT_BYTES": "1000"},
			file: "hub:\n  history_max_bytes: 100\n",
			want: "config file FILE: line 2: hub.history_max_bytes: 100 is below hub.max_event_bytes (1000): the history could not hold the largest event; hub.max_event_bytes set by SSEHUB_HUB_MAX_EVENT_BYTES",
		},
		{
			vars: map[string]string{"SSEHUB_NATS_EMBEDDED": "true"},
			file: "nats:\n  replicas: 3\n",
			// Each line names where its value was set.
			want: `nats.embedded: true needs hub.broker: nats (it is "memory"); set by SSEHUB_NATS_EMBEDDED` + "\n" +
				"config file FILE: line 2: nats.replicas: 3 is more than the embedded server (nats.embedded: true), a single server, can hold: use 1; nats.embedded set by SSEHUB_NATS_EMBEDDED",
		},
		{
			// The secret, set by its variable as secrets are, is named by
			// its variable, never by its value.
			vars: map[string]string{"SSEHUB_AUTH_JWT_HMAC_SECRET": strings.Repeat("s3cret-", 6)},
			file: "auth:\n  jwt:\n    algorithms: [HS384]\n",
			want: `config file FILE: line 3: auth.jwt.algorithms: "HS384" needs an auth.jwt.hmac_secret of 48 bytes or more, as long as its hash (RFC 7518); it has 42 (value not shown); auth.jwt.hmac_secret set by SSEHUB_AUTH_JWT_HMAC_SECRET`,
		},
	} {
		path := os.DevNull
		if tc.file != "" {
			path = writeYAML(t, tc.file)
		}
		_, err := Load([]string{"--config", path}, env(tc.vars))
		if want := strings.ReplaceAll(tc.want, "FILE", strconv.Quote(path)); err == nil || err.Error() != want {
			t.Errorf("%v %q: err = %v\nwant %s", tc.vars, tc.file, err, want)
		}
	}
}

// TestLoadFileNotAMapping checks that a file that holds a list or a text
// rather than keys says so: the error named the Go type viper wanted,
// "cannot unmarshal !!seq into map[string]interface {}".
func TestLoadFileNotAMapping(t *testing.T) {
	for yml, want := range map[string]string{
		"- server\n- cors\n":            "line 1: the file is a list, not a mapping of sections and keys",
		"# ssehub\nserver.addr=:8111\n": "line 2: the file is a text, not a mapping of sections and keys",
	} {
		_, err := Load([]string{"--config", writeYAML(t, yml)}, nil)
		if !errors.Is(err, ErrConfigFile) || !strings.Contains(err.Error(), want) || strings.Contains(err.Error(), "interface") {
			t.Errorf("%q: err = %v, want ErrConfigFile saying %q", yml, err, want)
		}
	}
}

// TestLoadComplexKeyHidesItsValue checks that a key written as a list or
// a mapping (? [..] or [..]: ), which YAML reads but a configuration has
// no use for, is refused at its line without showing what it holds: the
// library's "invalid map key: []interface {}{...}" printed it, a token
// or a secret written where its key belongs, at "line 1".
func TestLoadComplexKeyHidesItsValue(t *testing.T) {
	const secret = "s3cr3t-0123456789-0123456789-0123456789"
	const want = "a key written as a list or a mapping: a key is a name, such as addr: (value not shown, as it may be a token or a secret)"
	for _, tt := range []struct{ yaml, line string }{
		{"auth:\n  ? [" + secret + "]\n  : x\n", "line 2"},
		{"log:\n  level: info\nauth:\n  ? {jwt: " + secret + "}\n  : x\n", "line 4"},
		{"[" + secret + "]: x\n", "line 1"},
	} {
		wantFileError(t, tt.yaml, tt.line+": "+want)
	}
}

// TestLoadUnusedAnchorSaysWhatToDo checks that an anchor no alias uses,
// written before a value, is refused in words that fit what was written:
// before a quoted value it is no part of the text, and "quote it" asked
// for what was already done; before a plain one it may be either, and
// the error says both ways out.
func TestLoadUnusedAnchorSaysWhatToDo(t *testing.T) {
	const secret = "s3cr3t-0123456789-0123456789-0123456789"
	for _, tt := range []struct{ yaml, want string }{
		{"server:\n  addr: &a \":0\"\n", `server.addr: an anchor (&a) that no alias (*a) uses, before a quoted value: remove the anchor`},
		{"cors:\n  allowed_origins: ['https://a.test', &o 'https://b.test']\n", `cors.allowed_origins[1]: an anchor (&o) that no alias (*o) uses, before a quoted value: remove the anchor`},
		{"log:\n  level: &l |\n    info\n", `log.level: an anchor (&l) that no alias (*l) uses, before a quoted value: remove the anchor`},
		{"stream:\n  retry: &r 3s\n", `stream.retry: "&r 3s" starts with &, which YAML reads as an anchor, not as text: quote it if the & is part of the value, or remove the anchor (&r), which no alias (*r) uses`},
		{"auth:\n  jwt:\n    hmac_secret: &s \"" + secret + "\"\n", `auth.jwt.hmac_secret: an anchor that no alias uses, before a quoted value: remove the anchor (value not shown)`},
		{"auth:\n  jwt:\n    hmac_secret: &s " + secret + "\n", `auth.jwt.hmac_secret: starts with &, which YAML reads as an anchor, not as text: quote it if the & is part of the value, or remove the anchor, which no alias uses (value not shown)`},
	} {
		path := writeYAML(t, tt.yaml)
		_, err := Load([]string{"--config", path}, nil)
		if !errors.Is(err, ErrInvalidValue) || !strings.HasSuffix(err.Error(), tt.want) || strings.Contains(err.Error(), secret) {
			t.Errorf("%q: err = %v\nwant it to end in %s", tt.yaml, err, tt.want)
		}
	}
}

// TestLoadValueErrorNamesItsLine checks that an error of a value, or of a
// key, the file set names the line that wrote it, as a syntax error
// does: a user with a long file had the key alone to look for. A list's
// item names the item's line.
func TestLoadValueErrorNamesItsLine(t *testing.T) {
	filler := strings.Repeat("# a comment\n", 38)
	for _, tt := range []struct{ yaml, want string }{
		{"server:\n  addr: \":8111\"\n" + filler + "stream:\n  retry: 3x\n", `line 42: stream.retry: invalid duration "3x"`},
		{"cors:\n  allowed_origins:\n    - https://a.test\n    -\n", `line 4: cors.allowed_origins[1]: empty item in a list`},
		// An item found wrong once the list is read names the item's
		// line, in a block list or a flow one over several lines; it
		// named the key's.
		{"cors:\n  allowed_origins:\n    - https://a.test\n    - https://b.test/path\n", `line 4: cors.allowed_origins: "https://b.test/path" is not an origin`},
		{"server:\n  trusted_proxies: [10.0.0.1,\n    bogus]\n", `line 3: server.trusted_proxies: "bogus" is neither`},
		{"cors:\n  exposed_headers:\n    - X-A\n    - \"X B\"\n", `line 4: cors.exposed_headers: "X B" is not a header name`},
		{"cors:\n  allow_credentials: true\n  allowed_headers:\n    - X-A\n    - \"*\"\n", `line 5: cors.allowed_headers: "*" means no header`},
		{"hub:\n  broker: nats\nnats:\n  url:\n    - nats://a:4222\n    - nats://b:4222/x\n", `line 6: nats.url: "nats://b:4222/x" is not a NATS server URL`},
		{"hub:\n  broker: nats\nnats:\n  url:\n    - nats://a:4222\n    - ws://b:4222\n", `line 6: nats.url: "ws://b:4222" is a WebSocket URL`},
		// An error of a list as a whole names the key's line.
		{"hub:\n  broker: nats\nnats:\n  url: []\n", `line 4: nats.url: no server`},
		{"log:\n  level: info\n  colour: red\n", `line 3: log.colour: unknown key`},
		// A key YAML reads as no text (a number, a date, null) is named
		// as viper names it, by its value: it named the section's line.
		{"log:\n  level: info\n  0x1F: red\n", `line 3: log: an unknown key, its name not shown`},
		{"log:\n  level: info\n  ~: red\n", `line 3: log: an unknown key, its name not shown`},
		{"log:\n  level: info\n  1.50: red\n", `line 3: log: an unknown key, its name not shown`},
		{"log:\n  level: info\n  2001-12-14: red\n", `line 3: log: an unknown key, its name not shown`},
		{"log:\n  level: info\n  true: red\n", `line 3: log.true: unknown key`},
		// A dotted key names the lines of the keys it writes.
		{"log:\n  format: text\n  level.x: red\n", `line 3: log.level: expected a value, got a mapping`},
		{"base: &b\n  level: loud\nlog:\n  <<: *b\n", `line 2: base.level: unknown key`},
	} {
		path := writeYAML(t, tt.yaml)
		_, err := Load([]string{"--config", path}, nil)
		if want := fmt.Sprintf("%s %q: %s", ErrConfigFile, path, tt.want); err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("%q: err = %v\nwant it to contain %s", tt.yaml, err, want)
		}
	}
}

// TestLoadSecretReadAsADate checks that a token or a secret written as
// what YAML reads as a date is refused as one, without its value: it was
// "expected a string, got a list or a mapping", about a single value.
func TestLoadSecretReadAsADate(t *testing.T) {
	const want = "a YAML date, not text: quote it (value not shown)"
	for _, tt := range []struct{ yaml, want string }{
		{"auth:\n  jwt:\n    hmac_secret: 2001-12-14\n", "line 3: auth.jwt.hmac_secret: " + want},
		{"auth:\n  subscribe_tokens: [a-token, 2001-12-14t21:59:43.10-05:00]\n", "line 2: auth.subscribe_tokens[1]: " + want},
		{"auth:\n  publish_tokens: 2001-12-14\n", "line 2: auth.publish_tokens: " + want},
	} {
		wantFileError(t, tt.yaml, tt.want)
	}
}

// TestLoadJWTPublicKeyFileWithoutAKey checks that an auth.jwt.public_key_file
// that holds no public key (a private key, a certificate's key file, any
// other file) is refused as the configuration's other bad values are,
// naming the variable or the file's line that set it: it was found only
// after the configuration was loaded, and its error named neither.
func TestLoadJWTPublicKeyFileWithoutAKey(t *testing.T) {
	cert, key := writeTLSPair(t)
	want := `auth.jwt.public_key_file: "` + key + `": no PUBLIC KEY, RSA PUBLIC KEY or CERTIFICATE block`
	_, err := Load([]string{"--config", os.DevNull}, env(map[string]string{"SSEHUB_AUTH_JWT_PUBLIC_KEY_FILE": key}))
	if !errors.Is(err, ErrInvalidValue) || !strings.HasPrefix(err.Error(), want) || !strings.HasSuffix(err.Error(), "; set by SSEHUB_AUTH_JWT_PUBLIC_KEY_FILE") {
		t.Errorf("err = %v\nwant %s ...; set by SSEHUB_AUTH_JWT_PUBLIC_KEY_FILE", err, want)
	}
	path := writeYAML(t, "auth:\n  jwt:\n    public_key_file: "+key+"\n")
	_, err = Load([]string{"--config", path}, nil)
	if want := fmt.Sprintf("%s %q: line 3: %s", ErrConfigFile, path, want); !errors.Is(err, ErrInvalidValue) || !strings.HasPrefix(err.Error(), want) {
		t.Errorf("err = %v\nwant %s", err, want)
	}
	// A certificate holds a public key: it is one.
	if _, err := Load([]string{"--config", os.DevNull}, env(map[string]string{"SSEHUB_AUTH_JWT_PUBLIC_KEY_FILE": cert})); err != nil {
		t.Errorf("a certificate: %v", err)
	}
}
