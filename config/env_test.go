package config

import (
	"errors"
	"os"
	"strings"
	"testing"
)

func TestCheckEnv(t *testing.T) {
	if err := CheckEnv([]string{"HOME=/root", "SSEHUB_SERVER_ADDR=:1", "SSEHUB_CORS_ALLOWED_ORIGINS=http://a", "SSEHUB_NATS_PUBLISH_BATCHING=false", "PATH=/bin"}); err != nil {
		t.Errorf("known names: %v", err)
	}
	err := CheckEnv([]string{"SSEHUB_SERVER_ADR=:1", "SSEHUB_AUTH_PUBLISH_TOKEN=secret", "SSEHUB_SREAM_RETRY=1s", "SSEHUB_STREM_X=1", "SSEHUB_STREAM_HEARTBEAT=5s", "OTHER_X=1"})
	if !errors.Is(err, ErrUnknownKey) {
		t.Fatalf("err %v, want ErrUnknownKey", err)
	}
	msg := err.Error()
	for _, want := range []string{
		"SSEHUB_SERVER_ADR: ", "did you mean SSEHUB_SERVER_ADDR?",
		"SSEHUB_AUTH_PUBLISH_TOKEN: ", "did you mean SSEHUB_AUTH_PUBLISH_TOKENS?",
		"SSEHUB_SREAM_RETRY: ", "did you mean SSEHUB_STREAM_RETRY?", // a prefix match said SSEHUB_SERVER_ADDR
		"SSEHUB_STREM_X: no setting has this environment variable; the README's configuration table lists them",
		"SSEHUB_STREAM_HEARTBEAT: ", "did you mean SSEHUB_STREAM_HEARTBEAT_INTERVAL?", // cut short
	} {
		if !strings.Contains(msg, want) {
			t.Errorf("%q lacks %q", msg, want)
		}
	}
	if strings.Contains(msg, "secret") || strings.Contains(msg, "OTHER_X") {
		t.Errorf("%q shows a value or another program's variable", msg)
	}
}

// TestCheckEnvCase checks that a variable named in another case than
// SSEHUB_'s upper case, which Load never reads, is reported with the name
// it meant: ssehub_auth_subscribe_tokens left subscribing open without a
// word.
func TestCheckEnvCase(t *testing.T) {
	err := CheckEnv([]string{"ssehub_auth_subscribe_tokens=secret", "Ssehub_Server_Addr=:1", "SSEHUB_stream_retry=1s", "ssehubx=1"})
	if !errors.Is(err, ErrUnknownKey) {
		t.Fatalf("err %v, want ErrUnknownKey", err)
	}
	for _, want := range []string{
		"ssehub_auth_subscribe_tokens: no setting has this environment variable; did you mean SSEHUB_AUTH_SUBSCRIBE_TOKENS? (names are upper case)",
		"Ssehub_Server_Addr: no setting has this environment variable; did you mean SSEHUB_SERVER_ADDR? (names are upper case)",
		"SSEHUB_stream_retry: no setting has this environment variable; did you mean SSEHUB_STREAM_RETRY? (names are upper case)",
	} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("%q lacks %q", err, want)
		}
	}
	if strings.Contains(err.Error(), "secret") || strings.Contains(err.Error(), "ssehubx") {
		t.Errorf("%q shows a value or a variable that is not ssehub's", err)
	}
}

// TestCheckEnvKubernetesServiceLinks checks that the variables Kubernetes
// gives every pod for each Service of its namespace are not taken for
// misspelt settings: with a Service named ssehub (or ssehub-nats), every
// ssehub pod refused to start, on SSEHUB_SERVICE_HOST. A name of that form
// without its Service's SERVICE_HOST is still reported.
func TestCheckEnvKubernetesServiceLinks(t *testing.T) {
	environ := []string{
		"SSEHUB_SERVICE_HOST=10.0.0.11", "SSEHUB_SERVICE_PORT=8111", "SSEHUB_SERVICE_PORT_HTTP=8111",
		"SSEHUB_PORT=tcp://10.0.0.11:8111", "SSEHUB_PORT_8111_TCP=tcp://10.0.0.11:8111",
		"SSEHUB_PORT_8111_TCP_PROTO=tcp", "SSEHUB_PORT_8111_TCP_PORT=8111", "SSEHUB_PORT_8111_TCP_ADDR=10.0.0.11",
		"SSEHUB_NATS_SERVICE_HOST=10.0.0.12", "SSEHUB_NATS_SERVICE_PORT=4222", "SSEHUB_NATS_SERVICE_PORT_CLIENT=4222",
		"SSEHUB_NATS_PORT=tcp://10.0.0.12:4222", "SSEHUB_NATS_PORT_4222_TCP=tcp://10.0.0.12:4222",
		"SSEHUB_NATS_PORT_4222_TCP_PROTO=tcp", "SSEHUB_NATS_PORT_4222_TCP_PORT=4222", "SSEHUB_NATS_PORT_4222_TCP_ADDR=10.0.0.12",
		"SSEHUB_NATS_URL=nats://ssehub-nats:4222",
	}
	if err := CheckEnv(environ); err != nil {
		t.Errorf("a pod's service links: %v", err)
	}
	err := CheckEnv([]string{"SSEHUB_SERVER_PORT=9000", "SSEHUB_SERVICE_HOST=10.0.0.11"})
	if err == nil || !strings.Contains(err.Error(), "SSEHUB_SERVER_PORT: ") || strings.Contains(err.Error(), "SSEHUB_SERVICE_HOST") {
		t.Errorf("err %v, want SSEHUB_SERVER_PORT alone reported", err)
	}
}

// TestCheckEnvDockerLinks checks that the variables Docker's legacy links
// give a container are not taken for misspelt settings: docker run --link
// ssehub:ssehub (or --link nats:ssehub-nats) gave SSEHUB_NAME,
// SSEHUB_PORT_8111_TCP_ADDR and an SSEHUB_ENV_ variable for each of the
// linked container's, and ssehub refused to start. They are known by the
// link's SSEHUB_NAME=/<container>/<alias>; without it they are reported.
func TestCheckEnvDockerLinks(t *testing.T) {
	environ := []string{
		"SSEHUB_PORT=tcp://172.17.0.2:8111", "SSEHUB_PORT_8111_TCP=tcp://172.17.0.2:8111",
		"SSEHUB_PORT_8111_TCP_ADDR=172.17.0.2", "SSEHUB_PORT_8111_TCP_PORT=8111", "SSEHUB_PORT_8111_TCP_PROTO=tcp",
		"SSEHUB_NAME=/web/ssehub", "SSEHUB_ENV_SSEHUB_HUB_BROKER=memory", "SSEHUB_ENV_GOMAXPROCS=2",
		"SSEHUB_NATS_PORT=tcp://172.17.0.3:4222", "SSEHUB_NATS_PORT_4222_TCP=tcp://172.17.0.3:4222",
		"SSEHUB_NATS_PORT_4222_TCP_ADDR=172.17.0.3", "SSEHUB_NATS_PORT_6222_TCP_START=tcp://172.17.0.3:6222",
		"SSEHUB_NATS_PORT_6222_TCP_PORT_END=6223", "SSEHUB_NATS_NAME=/web/ssehub-nats", "SSEHUB_NATS_ENV_NATS_VERSION=2.12",
		"SSEHUB_NATS_URL=nats://ssehub-nats:4222",
	}
	if err := CheckEnv(environ); err != nil {
		t.Errorf("a container's links: %v", err)
	}
	// An SSEHUB_..._NAME that is no link's name (not a path, or one
	// ending in another alias) lets nothing through.
	err := CheckEnv([]string{"SSEHUB_NAME=hub", "SSEHUB_ENV_X=1", "SSEHUB_SERVER_NAME=/web/other", "SSEHUB_SERVER_PORT=9000"})
	for _, want := range []string{"SSEHUB_NAME: ", "SSEHUB_ENV_X: ", "SSEHUB_SERVER_NAME: ", "SSEHUB_SERVER_PORT: "} {
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("err %v\nlacks %q", err, want)
		}
	}
}

// TestCheckEnvSuggestsTheSection checks that a name no typo explains, but
// within a known section, lists that section's variables: SSEHUB_SERVER_PORT,
// a likely guess, named none.
func TestCheckEnvSuggestsTheSection(t *testing.T) {
	err := CheckEnv([]string{"SSEHUB_SERVER_PORT=9000", "SSEHUB_AUTH_JWT_SECRET_KEY=x"})
	for _, want := range []string{
		"SSEHUB_SERVER_PORT: no setting has this environment variable; those of server are SSEHUB_SERVER_ADDR, SSEHUB_SERVER_SHUTDOWN_TIMEOUT, SSEHUB_SERVER_READ_TIMEOUT, SSEHUB_SERVER_TRUSTED_PROXIES, SSEHUB_SERVER_H2C\n",
		"SSEHUB_AUTH_JWT_SECRET_KEY: no setting has this environment variable; those of auth.jwt are SSEHUB_AUTH_JWT_HMAC_SECRET, SSEHUB_AUTH_JWT_PUBLIC_KEY_FILE,",
	} {
		if err == nil || !strings.Contains(err.Error()+"\n", want) {
			t.Errorf("err %v\nlacks %q", err, want)
		}
	}
}

// TestCheckEnvCaseAndTypo checks that a name in lower case that is also
// misspelt gets the hint a misspelt upper-case name gets, and is told
// that names are upper case: it was pointed to the README alone, which
// did not say what was wrong with it.
func TestCheckEnvCaseAndTypo(t *testing.T) {
	err := CheckEnv([]string{"ssehub_log_levl=debug", "ssehub_server_port=1"})
	for _, want := range []string{
		"ssehub_log_levl: no setting has this environment variable; did you mean SSEHUB_LOG_LEVEL? (names are upper case)",
		"ssehub_server_port: no setting has this environment variable; those of server are SSEHUB_SERVER_ADDR,",
	} {
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("err %v\nlacks %q", err, want)
		}
	}
	if err != nil && !strings.HasSuffix(err.Error(), "SSEHUB_SERVER_H2C (names are upper case)") {
		t.Errorf("err %v\ndoes not say names are upper case for ssehub_server_port", err)
	}
}

// TestCheckEnvSectionName checks that a section's own name, which names no
// setting (SSEHUB_SERVER_TLS, for HTTPS), lists the section's variables:
// it was taken for a typo, "did you mean SSEHUB_SERVER_H2C?", or for a
// name cut short, pointing to the section's first variable alone.
func TestCheckEnvSectionName(t *testing.T) {
	err := CheckEnv([]string{"SSEHUB_SERVER_TLS=1", "SSEHUB_AUTH_JWT=x"})
	for _, want := range []string{
		"SSEHUB_SERVER_TLS: no setting has this environment variable; those of server.tls are SSEHUB_SERVER_TLS_CERT_FILE, SSEHUB_SERVER_TLS_KEY_FILE\n",
		"SSEHUB_AUTH_JWT: no setting has this environment variable; those of auth.jwt are SSEHUB_AUTH_JWT_HMAC_SECRET, SSEHUB_AUTH_JWT_PUBLIC_KEY_FILE,",
	} {
		if err == nil || !strings.Contains(err.Error()+"\n", want) {
			t.Errorf("err %v\nlacks %q", err, want)
		}
	}
}

// TestReadmeSaysWhatKnowsALink keeps the README's word on the variables
// of Kubernetes Services and Docker links whole: they are known by the
// Service's _SERVICE_HOST or the link's _NAME beside them, and one set by
// hand without it (SSEHUB_PORT, as a guess at the port) is refused, which
// a reader of "not refused" alone would not expect.
func TestReadmeSaysWhatKnowsALink(t *testing.T) {
	if err := CheckEnv([]string{"SSEHUB_PORT=8111"}); err == nil {
		t.Fatal("SSEHUB_PORT alone was taken for a Service's variable: update this test and the README")
	}
	data, err := os.ReadFile("../README.md")
	if err != nil {
		t.Fatal(err)
	}
	text := strings.Join(strings.Fields(string(data)), " ")
	for _, want := range []string{
		"known by the Service's `SSEHUB_SERVICE_HOST` or the link's `SSEHUB_NAME`",
		"`SSEHUB_PORT` set by hand, without either, is refused",
	} {
		if !strings.Contains(text, want) {
			t.Errorf("README should say %q", want)
		}
	}
}
