package natsbroker

import (
	"log/slog"
	"strings"
	"testing"

	"github.com/ssehub/ssehub/internal/testlog"
)

// TestOpenLogsTheServer: once open, the broker says at info which NATS
// server it connected to, of nats.url's, and which stream it uses,
// without the URL's password: nothing at start named them, so an
// instance given the wrong nats.url (another cluster's, a staging one)
// did not show it in its log.
func TestOpenLogsTheServer(t *testing.T) {
	ns := startNATSWith(t, &natsServer{denied: []string{"nothing.here"}})
	var logs testlog.Buffer
	b, err := Open(t.Context(), Options{URLs: []string{ns.restrictedURL()}, Logger: slog.New(slog.NewTextHandler(&logs, nil))})
	if err != nil {
		t.Fatal(err)
	}
	b.Close()
	var line string
	for l := range strings.Lines(logs.String()) {
		if strings.Contains(l, `msg="nats connected"`) {
			line = l
		}
	}
	host := strings.TrimPrefix(ns.ClientURL(), "nats://")
	if !strings.Contains(line, "@"+host) || !strings.Contains(line, "stream="+DefaultStream) {
		t.Errorf("connected line %q, want the server %s and the stream %s", line, host, DefaultStream)
	}
	if strings.Contains(logs.String(), "restricted:restricted@") {
		t.Errorf("the log holds nats.url's password:\n%s", logs.String())
	}
}

// TestOpenLogsNoToken: a token in nats.url (nats://TOKEN@host, as NATS
// reads a user name without a password) is a secret as a password is:
// the lines that name the server, at start and on a reconnection, mask it. url.URL's Redacted, which
// nats.go's ConnectedUrlRedacted uses, masks only a password, and the
// token was written out whole.
func TestOpenLogsNoToken(t *testing.T) {
	const token = "s3cretT0ken"
	ns := startNATSWith(t, &natsServer{token: token})
	var logs testlog.Buffer
	u := "nats://" + token + "@" + strings.TrimPrefix(ns.ClientURL(), "nats://")
	b, err := Open(t.Context(), Options{URLs: []string{u}, Logger: slog.New(slog.NewTextHandler(&logs, nil))})
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	ns.stop()
	ns.start(t)
	waitUntil(t, waitLimit, "a reconnection logged", func() bool {
		return strings.Contains(logs.String(), `msg="nats reconnected"`)
	})
	if !strings.Contains(logs.String(), `msg="nats connected"`) {
		t.Fatalf("no connected line:\n%s", logs.String())
	}
	if strings.Contains(logs.String(), token) {
		t.Errorf("the log holds nats.url's token:\n%s", logs.String())
	}
}

// TestRedactedMasksTheQuery: the server named in the log lines keeps its
// host and path and masks the secrets a URL may hold, the query's values
// among them: a proxy in front of a WebSocket NATS may take its token
// there.
func TestRedactedMasksTheQuery(t *testing.T) {
	for server, want := range map[string]string{
		"nats://a.test:4222":                          "nats://a.test:4222",
		"nats://u:s3cret@a.test:4222":                 "nats://u:xxxxx@a.test:4222",
		"nats://s3cret@a.test:4222":                   "nats://xxxxx@a.test:4222",
		"wss://a.test/nats?token=s3cret":              "wss://a.test/nats?token=xxxxx",
		"wss://u:p@a.test/nats?region=eu&Auth=s3cret": "wss://u:xxxxx@a.test/nats?Auth=xxxxx&region=xxxxx",
	} {
		if got := redacted(server); got != want || strings.Contains(got, "s3cret") {
			t.Errorf("redacted(%q) = %q, want %q", server, got, want)
		}
	}
}
