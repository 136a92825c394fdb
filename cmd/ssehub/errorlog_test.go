package main

import (
	"bytes"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"io"
	"log/slog"
	"maps"
	"math/big"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/ssehub/ssehub/config"
	"github.com/ssehub/ssehub/internal/testpki"
	"go.uber.org/goleak"
	"golang.org/x/net/http2"
	"golang.org/x/net/http2/hpack"
)

// TestClientGoAwayWarnsOnce: an HTTP/2 client that closes its
// connection with GOAWAY and an error code (its own trouble, or a
// client's way to leave, not the server's fault) is a debug line but the
// first: net/http's "http2: received GOAWAY" was a warning per
// connection, at the rate a client chose. One without an error code it
// does not log.
func TestClientGoAwayWarnsOnce(t *testing.T) {
	cfg := config.Default()
	cfg.Server.H2C = true
	var logs lockedBuffer
	base, _ := startMainLogging(t, cfg, slog.New(slog.NewTextHandler(&logs, &slog.HandlerOptions{Level: slog.LevelDebug})))
	for range 3 {
		h2cSend(t, strings.TrimPrefix(base, "http://"), func(fr *http2.Framer) error {
			if err := fr.WriteSettings(); err != nil {
				return err
			}
			return fr.WriteGoAway(0, http2.ErrCodeProtocol, []byte("bye"))
		})
	}
	warnedOnce(t, logs.String(), "http2_goaway", "GOAWAY", 3)
}

// h2cSend opens a connection to addr, sends HTTP/2's preface and what
// send writes, and reads until the server closes it, after it logged
// what it had to.
func h2cSend(t *testing.T, addr string, send func(fr *http2.Framer) error) {
	t.Helper()
	conn, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	if err := conn.SetDeadline(time.Now().Add(20 * time.Second)); err != nil {
		t.Fatal(err)
	}
	if _, err := io.WriteString(conn, http2.ClientPreface); err != nil {
		t.Fatal(err)
	}
	if err := send(http2.NewFramer(conn, conn)); err != nil {
		t.Fatal(err)
	}
	if _, err := io.Copy(io.Discard, conn); err != nil {
		t.Fatal(err)
	}
}

// warnedOnce checks the lines of kind in logs: n of them, all containing
// sub, the first a warning and the others at debug (at info level, n is
// 1: the first alone).
func warnedOnce(t *testing.T, logs, kind, sub string, n int) {
	t.Helper()
	var lines []string
	for line := range strings.Lines(logs) {
		if strings.Contains(line, " kind="+kind) {
			lines = append(lines, line)
		}
	}
	if len(lines) != n {
		t.Fatalf("%d lines of kind %s, want %d:\n%s", len(lines), kind, n, strings.Join(lines, ""))
	}
	for i, line := range lines {
		want := "level=DEBUG"
		if i == 0 {
			want = "level=WARN"
		}
		if !strings.Contains(line, want) || !strings.Contains(line, sub) {
			t.Errorf("line %d of kind %s: %q, want %s and %q", i, kind, line, want, sub)
		}
	}
}

// TestClientHTTP2MistakeWarnsOnce: an HTTP/2 client that breaks the
// protocol (a first frame that is not SETTINGS, DATA on the connection's
// stream 0) or sends its preface and then nothing is the client's
// trouble, as a GOAWAY with an error code is: net/http's "http2: server
// connection error" and "timeout waiting for SETTINGS frames" were
// warnings per connection, at the rate a client chose. They are debug
// lines but the first of each kind.
func TestClientHTTP2MistakeWarnsOnce(t *testing.T) {
	t.Parallel() // its own server; it waits on timers, not the CPU
	cfg := config.Default()
	cfg.Server.H2C = true
	var logs lockedBuffer
	base, _ := startMainLogging(t, cfg, slog.New(slog.NewTextHandler(&logs, &slog.HandlerOptions{Level: slog.LevelDebug})))
	addr := strings.TrimPrefix(base, "http://")
	for _, c := range []struct {
		name, kind, line string
		send             func(fr *http2.Framer) error
	}{
		{"a first frame that is not SETTINGS", "http2_connection_error", "connection error from", func(fr *http2.Framer) error {
			return fr.WritePing(false, [8]byte{})
		}},
		{"DATA on stream 0", "http2_connection_error", "connection error from", func(fr *http2.Framer) error {
			if err := fr.WriteSettings(); err != nil {
				return err
			}
			fr.AllowIllegalWrites = true
			return fr.WriteData(0, false, []byte("x"))
		}},
		{"the preface alone", "http2_settings_timeout", "timeout waiting for SETTINGS", func(*http2.Framer) error { return nil }},
		{"the preface alone again", "http2_settings_timeout", "timeout waiting for SETTINGS", func(*http2.Framer) error { return nil }},
	} {
		h2cSend(t, addr, c.send)
		if line := grepLine(logs.String(), c.line); line == "" {
			t.Fatalf("%s: no %q line:\n%s", c.name, c.line, logs.tail(4000))
		}
	}
	warnedOnce(t, logs.String(), "http2_connection_error", "connection error from", 2)
	warnedOnce(t, logs.String(), "http2_settings_timeout", "timeout waiting for SETTINGS", 2)
}

// TestTLSClientMistakeWarnsOnce: a client whose first bytes are not
// TLS (a port scanner's probe, SSH or SMTP on the wrong port) or that
// offers only versions the server does not take (TLS 1.0, an old
// monitoring agent) fails the handshake on the server's side, not the
// certificate's: net/http's "TLS handshake error" was a warning per
// connection, at the rate scanners chose; it warns for the first of each
// kind alone, as a probe that says nothing does.
func TestTLSClientMistakeWarnsOnce(t *testing.T) {
	addr, logs, waitClosed := startTLSLogging(t, testpki.New(t))
	for range 2 {
		conn, err := net.Dial("tcp", addr)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := io.WriteString(conn, "SSH-2.0-OpenSSH_9.6\r\n"); err != nil {
			t.Fatal(err)
		}
		waitClosed("a connection that is not TLS")
		conn.Close()

		old, err := tls.Dial("tcp", addr, &tls.Config{InsecureSkipVerify: true, MinVersion: tls.VersionTLS10, MaxVersion: tls.VersionTLS10}) //nolint:gosec // the point
		if err == nil {
			old.Close()
			t.Fatal("a TLS 1.0 client completed the handshake")
		}
		waitClosed("a TLS 1.0 client")
	}
	warnedOnce(t, logs.tail(1<<20), "tls_not_tls", "does not look like a TLS handshake", 1)
	warnedOnce(t, logs.tail(1<<20), "tls_unsupported", "unsupported versions", 1)
}

// TestTLSSilentClientWarnsOnce: a client that opens a connection and
// says nothing until the server gives up on its handshake (a load
// balancer's TCP check that holds the connection, a scanner, a client
// holding connections open for nothing) warns for the first alone, as
// one that closes without a word does: net/http's "TLS handshake error
// ...: i/o timeout" was a warning per connection, at the rate a client
// chose.
func TestTLSSilentClientWarnsOnce(t *testing.T) {
	pki := testpki.New(t)
	cfg := tlsTestConfig(pki)
	cfg.Server.ReadTimeout = time.Second // the handshake's bound
	var logs lockedBuffer
	base, _ := startMainLogging(t, cfg, slog.New(slog.NewTextHandler(&logs, nil)))
	var wg sync.WaitGroup
	for range 3 {
		conn, err := net.Dial("tcp", strings.TrimPrefix(base, "https://"))
		if err != nil {
			t.Fatal(err)
		}
		defer conn.Close()
		if err := conn.SetDeadline(time.Now().Add(20 * time.Second)); err != nil {
			t.Fatal(err)
		}
		// The server closes the connection once its handshake timed
		// out, after it logged the error.
		wg.Go(func() {
			if _, err := io.Copy(io.Discard, conn); err != nil {
				t.Error(err)
			}
		})
	}
	wg.Wait()
	warnedOnce(t, logs.String(), "tls_timeout", "i/o timeout", 1)
}

// summaryCounts sums the lines "client connection errors" in logs up: the
// count of each kind, and their number. Each must be at info and its
// count the sum of its kinds'.
func summaryCounts(t *testing.T, logs string) (kinds map[string]int, lines int) {
	t.Helper()
	kinds = make(map[string]int)
	field := regexp.MustCompile(` (\w+)=(\d+)\b`)
	for line := range strings.Lines(logs) {
		if !strings.Contains(line, `msg="client connection errors"`) {
			continue
		}
		lines++
		if !strings.Contains(line, "level=INFO") || !strings.Contains(line, " window=") {
			t.Errorf("summary %q, want an info line with its window", line)
		}
		count, sum := -1, 0
		for _, m := range field.FindAllStringSubmatch(line, -1) {
			n, _ := strconv.Atoi(m[2])
			if m[1] == "count" {
				count = n
				continue
			}
			kinds[m[1]] += n
			sum += n
		}
		if count != sum {
			t.Errorf("summary %q: count %d, its kinds sum to %d", line, count, sum)
		}
	}
	return kinds, lines
}

// TestClientErrorsSummedUp: the lines clients cause, one per connection
// at the rate they like, are at debug, but an operator at info or warn
// level still sees an attack or a flood (a rapid reset, failed
// handshakes by the thousand) and a stall of the server's own: the first
// of each kind warns, and an info line a clientErrorWindow counts the
// others by kind. However fast clients come, each kind warns once and
// the summary is one line; its counts are exact, and the shutdown writes
// the open window's line.
func TestClientErrorsSummedUp(t *testing.T) {
	defer goleak.VerifyNone(t, goleak.IgnoreCurrent())
	const n = 40                   // connections per kind
	hammer := func(cause func()) { // n clients at once
		var wg sync.WaitGroup
		for range n {
			wg.Go(cause)
		}
		wg.Wait()
	}
	check := func(t *testing.T, logs string, start time.Time, want map[string]int) {
		t.Helper()
		for kind := range want {
			warnedOnce(t, logs, kind, "", 1)
		}
		kinds, lines := summaryCounts(t, logs)
		if most := int(time.Since(start)/clientErrorWindow) + 1; lines < 1 || lines > most {
			t.Errorf("%d summary lines, want 1 to %d:\n%s", lines, most, logs)
		}
		for kind, n := range want {
			if kinds[kind] != n-1 {
				t.Errorf("summed up %d lines of kind %s, want %d: the first warned", kinds[kind], kind, n-1)
			}
		}
		if len(kinds) != len(want) {
			t.Errorf("summed up kinds %v, want %v", kinds, want)
		}
	}

	t.Run("h2c", func(t *testing.T) {
		cfg := config.Default()
		cfg.Server.H2C = true
		var logs lockedBuffer
		start := time.Now()
		base, stop := startMainReturning(t, cfg, slog.New(slog.NewTextHandler(&logs, nil)))
		addr := strings.TrimPrefix(base, "http://")
		hammer(func() {
			h2cSend(t, addr, func(fr *http2.Framer) error {
				if err := fr.WriteSettings(); err != nil {
					return err
				}
				return fr.WriteGoAway(0, http2.ErrCodeProtocol, nil)
			})
		})
		hammer(func() {
			h2cSend(t, addr, func(fr *http2.Framer) error { return fr.WritePing(false, [8]byte{}) })
		})
		if err := stop(); err != nil {
			t.Fatal(err)
		}
		check(t, logs.String(), start, map[string]int{"http2_goaway": n, "http2_connection_error": n})
	})

	t.Run("tls", func(t *testing.T) {
		pki := testpki.New(t)
		var logs lockedBuffer
		closed := newClosedConns()
		start := time.Now()
		base, stop := startMainReturning(t, tlsTestConfig(pki), slog.New(slog.NewTextHandler(&logs, nil)), func(m *Main) {
			m.connState = closed.connState
		})
		addr := strings.TrimPrefix(base, "https://")
		dial := func() net.Conn {
			conn, err := net.Dial("tcp", addr)
			if err != nil {
				t.Error(err)
				return nil
			}
			return conn
		}
		hammer(func() { // a TCP probe
			if conn := dial(); conn != nil {
				conn.Close()
			}
		})
		hammer(func() { // not TLS
			if conn := dial(); conn != nil {
				_, _ = io.WriteString(conn, "SSH-2.0-OpenSSH_9.6\r\n")
				_, _ = io.Copy(io.Discard, conn)
				conn.Close()
			}
		})
		hammer(func() { // HTTP/1.1 after choosing h2
			conn, err := tls.Dial("tcp", addr, &tls.Config{RootCAs: pki.Roots, ServerName: "127.0.0.1", NextProtos: []string{"h2"}})
			if err != nil {
				t.Error(err)
				return
			}
			_, _ = io.WriteString(conn, "GET / HTTP/1.1\r\nHost: ssehub\r\n\r\n")
			_, _ = io.Copy(io.Discard, conn)
			conn.Close()
		})
		hammer(func() { // a client that does not trust the certificate
			conn, err := tls.Dial("tcp", addr, &tls.Config{ServerName: "127.0.0.1"})
			if err == nil {
				conn.Close()
				t.Error("a client without the CA completed the handshake")
			}
		})
		hammer(func() { // a ClientHello cut short
			if conn := dial(); conn != nil {
				_, _ = io.WriteString(conn, "\x16\x03\x01\x00\x05\x01\x00\x00\x01\x00")
				_, _ = io.Copy(io.Discard, conn)
				conn.Close()
			}
		})
		// Every connection's line is written before it is closed.
		closed.wait(t, 5*n, "every connection")
		if err := stop(); err != nil {
			t.Fatal(err)
		}
		check(t, logs.String(), start, map[string]int{
			"tls_closed": n, "tls_not_tls": n, "http2_preface": n, "tls_refused": n, "tls_error": n,
		})
	})
}

// pipeListener accepts the connections dial makes, in memory: a server
// on it runs inside a synctest bubble.
type pipeListener struct {
	conns  chan net.Conn
	closed chan struct{}
	once   sync.Once
}

func newPipeListener() *pipeListener {
	return &pipeListener{conns: make(chan net.Conn), closed: make(chan struct{})}
}

func (l *pipeListener) Accept() (net.Conn, error) {
	select {
	case c := <-l.conns:
		return c, nil
	case <-l.closed:
		return nil, net.ErrClosed
	}
}

func (l *pipeListener) Close() error {
	l.once.Do(func() { close(l.closed) })
	return nil
}

func (l *pipeListener) Addr() net.Addr { return &net.TCPAddr{IP: net.IPv4(127, 0, 0, 1), Port: 8111} }

func (l *pipeListener) dial() net.Conn {
	server, client := net.Pipe()
	l.conns <- server
	return client
}

// TestClientErrorsWindow: a client that breaks HTTP/2 in bursts, many
// times a second, for several windows, warns once, and makes one summary
// line a clientErrorWindow, whose counts add up to every connection but
// the first. After a window without any, the next warns again. Once the
// server is done, flush writes the open window's line, and no timer
// writes another.
func TestClientErrorsWindow(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		var logs lockedBuffer
		errLog, flush := serverErrorLog(slog.NewTextHandler(&logs, nil), nil)
		var protocols http.Protocols
		protocols.SetUnencryptedHTTP2(true)
		srv := &http.Server{Handler: http.NotFoundHandler(), ErrorLog: errLog, Protocols: &protocols}
		ln := newPipeListener()
		served := make(chan error, 1)
		go func() { served <- srv.Serve(ln) }()
		breakHTTP2 := func() {
			conn := ln.dial()
			defer conn.Close()
			go func() {
				fr := http2.NewFramer(conn, nil)
				if _, err := io.WriteString(conn, http2.ClientPreface); err == nil {
					_ = fr.WritePing(false, [8]byte{})
				}
			}()
			// The server logs the error, then closes the connection.
			_, _ = io.Copy(io.Discard, conn)
		}
		const windows, burst = 3, 8
		start := time.Now()
		sent := 0
		for time.Since(start) < windows*clientErrorWindow {
			for range burst {
				breakHTTP2()
				sent++
			}
			time.Sleep(time.Second)
		}
		took := time.Since(start)
		synctest.Wait()
		_, lines := summaryCounts(t, logs.String())
		if most := int(took/clientErrorWindow) + 1; lines > most {
			t.Errorf("%d summary lines in %v, want at most %d", lines, took, most)
		}
		warnedOnce(t, logs.String(), "http2_connection_error", "connection error", 1)
		// The last window's line, then one that counted none: the kind
		// closes, and its next line warns.
		time.Sleep(2 * clientErrorWindow)
		kinds, _ := summaryCounts(t, logs.String())
		if kinds["http2_connection_error"] != sent-1 {
			t.Errorf("summed up %d, want %d: every connection but the first", kinds["http2_connection_error"], sent-1)
		}
		breakHTTP2()
		breakHTTP2()
		synctest.Wait()
		if err := srv.Close(); err != nil {
			t.Fatal(err)
		}
		if err := <-served; !errors.Is(err, http.ErrServerClosed) {
			t.Fatalf("Serve: %v", err)
		}
		flush()
		w := errLog.Writer().(*errorLogWriter)
		for _, window := range []*errorWindow{w.accepts, w.clients} {
			window.mu.Lock()
			if window.timer != nil || len(window.kinds) > 0 {
				t.Errorf("after flush, a window still open: %v", window.kinds)
			}
			window.mu.Unlock()
		}
		before := logs.String()
		if warned := strings.Count(before, "level=WARN"); warned != 2 {
			t.Errorf("%d warnings, want 2: the first, and the first after a window without any:\n%s", warned, before)
		}
		kinds, _ = summaryCounts(t, before)
		if kinds["http2_connection_error"] != sent {
			t.Errorf("after flush summed up %d, want %d", kinds["http2_connection_error"], sent)
		}
		time.Sleep(3 * clientErrorWindow)
		if after := logs.String(); after != before {
			t.Errorf("lines after flush:\n%s", after[len(before):])
		}
	})
}

// TestClientRapidResetWarnsOnce: a client that opens streams and resets
// them at once, faster than their handlers end (the rapid reset attack,
// CVE-2023-44487), gets net/http's answer, ENHANCE_YOUR_CALM, and its
// connection closed. Over connection after connection, that is an attack
// under way: its first line warns, as its own kind, and the summary
// counts the others.
func TestClientRapidResetWarnsOnce(t *testing.T) {
	defer goleak.VerifyNone(t, goleak.IgnoreCurrent())
	var logs lockedBuffer
	errLog, flush := serverErrorLog(slog.NewTextHandler(&logs, nil), nil)
	release := make(chan struct{})
	var protocols http.Protocols
	protocols.SetUnencryptedHTTP2(true)
	srv := &http.Server{
		// A handler that outlives its stream's reset, as one busy with
		// its request does.
		Handler:   http.HandlerFunc(func(http.ResponseWriter, *http.Request) { <-release }),
		ErrorLog:  errLog,
		Protocols: &protocols,
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	served := make(chan error, 1)
	go func() { served <- srv.Serve(ln) }()

	var headers bytes.Buffer
	enc := hpack.NewEncoder(&headers)
	for _, f := range []hpack.HeaderField{{Name: ":method", Value: "GET"}, {Name: ":scheme", Value: "http"}, {Name: ":path", Value: "/"}, {Name: ":authority", Value: "ssehub"}} {
		if err := enc.WriteField(f); err != nil {
			t.Fatal(err)
		}
	}
	const attacks = 3
	for range attacks {
		h2cSend(t, ln.Addr().String(), func(fr *http2.Framer) error {
			if err := fr.WriteSettings(); err != nil {
				return err
			}
			// Past the 250 handlers a connection runs at once, net/http
			// queues 1000 more: one stream after, it gives up.
			for i := range 250 + 1000 + 2 {
				id := uint32(2*i + 1)
				if err := fr.WriteHeaders(http2.HeadersFrameParam{StreamID: id, BlockFragment: headers.Bytes(), EndStream: true, EndHeaders: true}); err != nil {
					return nil // the server closed the connection
				}
				if err := fr.WriteRSTStream(id, http2.ErrCodeCancel); err != nil {
					return nil
				}
			}
			return nil
		})
	}
	close(release)
	if err := srv.Close(); err != nil {
		t.Fatal(err)
	}
	if err := <-served; !errors.Is(err, http.ErrServerClosed) {
		t.Fatalf("Serve: %v", err)
	}
	flush()
	warnedOnce(t, logs.String(), "http2_enhance_your_calm", "ENHANCE_YOUR_CALM", 1)
	if kinds, _ := summaryCounts(t, logs.String()); kinds["http2_enhance_your_calm"] != attacks-1 {
		t.Errorf("summed up %v, want %d rapid resets: every one but the first", kinds, attacks-1)
	}
}

// weakCert and weakKey are a self-signed certificate for 127.0.0.1 and
// its 512-bit RSA key: a pair that loads, but with which the server can
// sign no handshake.
const (
	weakCert = `-----BEGIN CERTIFICATE-----
MIIBkjCCATygAwIBAgIUG7bBTaM04ezGQYKAc2BVWqrEVyswDQYJKoZIhvcNAQEL
BQAwFDESMBAGA1UEAwwJMTI3LjAuMC4xMCAXDTI2MTEyNzE0NDAzOFoYDzIxMjYx
MTAzMTQ0MDM4WjAUMRIwEAYDVQQDDAkxMjcuMC4wLjEwXDANBgkqhkiG9w0BAQEF
AANLADBIAkEAy4DRVUOqyZsSrh3tcAjK8yvMiiOj+yoOdFoMb6u1TjpS/m7arc6l
t4fMXtoxFknJGLwvrStpfmpsBlFRRL5X/QIDAQABo2QwYjAdBgNVHQ4EFgQUdrmb
GElKvBEwflL616bP+MwDYm8wHwYDVR0jBBgwFoAUdrmbGElKvBEwflL616bP+MwD
Ym8wDwYDVR0TAQH/BAUwAwEB/zAPBgNVHREECDAGhwR/AAABMA0GCSqGSIb3DQEB
CwUAA0EABxPPaQQv4u8FvLlbjnLgHYNKvaXtz//xL24Kq4TPveFhXP+Eux+EC6zm
pWU/itr7Q7dviAg8VqOSaLomKcjT6g==
-----END CERTIFICATE-----
`
	weakKey = `-----BEGIN PRIVATE KEY-----
MIIBVQIBADANBgkqhkiG9w0BAQEFAASCAT8wggE7AgEAAkEAy4DRVUOqyZsSrh3t
cAjK8yvMiiOj+yoOdFoMb6u1TjpS/m7arc6lt4fMXtoxFknJGLwvrStpfmpsBlFR
RL5X/QIDAQABAkAsS5DFB2KQWXG6doctIKzUO09dLh7OV7wntUYJtI1VRldKXVs2
jl4NML+xOxUcKvL9m8r34S6q8GEqMG+EaHOhAiEA6534NNsOiyey/FliQ3gAl3Qr
YOoB+jX6rvMkupUa4IkCIQDdG6WVjDrlwS+6rxSSqdL7CoDA6fVdDDDalf1p7nfW
1QIhANegvUtaAmhVj5ckEiqewyPYO+64mdCr39yGRmG/HVbJAiEAgXPIVHBPo2ih
6yjKYLvw/G2/yDKyJxIWIEQkpDqsCykCIEDCtm/+7YwXncuephojYtFcsaE1MKqh
EX2vSORwdTCZ
-----END PRIVATE KEY-----
`
)

// TestTLSServerCertificateFaultWarnsEach: a handshake that fails because
// of the server's own certificate (a key too small to sign with, one
// that cannot sign at all) is the server's fault, whichever client
// comes: each such line warns, as net/http's other lines of the server's
// own do, and none is counted as a client's kind to be summed up at info.
func TestTLSServerCertificateFaultWarnsEach(t *testing.T) {
	dir := t.TempDir()
	pki := testpki.PKI{CertFile: filepath.Join(dir, "cert.pem"), KeyFile: filepath.Join(dir, "key.pem")}
	if err := os.WriteFile(pki.CertFile, []byte(weakCert), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(pki.KeyFile, []byte(weakKey), 0o600); err != nil {
		t.Fatal(err)
	}
	addr, logs, waitClosed := startTLSLogging(t, pki)
	const n = 2
	for range n {
		for _, version := range []uint16{tls.VersionTLS13, tls.VersionTLS12} {
			conn, err := tls.Dial("tcp", addr, &tls.Config{InsecureSkipVerify: true, MaxVersion: version}) //nolint:gosec // the certificate is not the point
			if err == nil {
				conn.Close()
				t.Fatal("a handshake with a 512-bit RSA key succeeded")
			}
			waitClosed("a handshake the server could not sign")
		}
	}
	var faults []string
	for line := range strings.Lines(logs.String()) {
		if strings.Contains(line, "TLS handshake error") {
			faults = append(faults, line)
		}
	}
	if len(faults) != 2*n {
		t.Fatalf("%d handshake errors logged, want %d:\n%s", len(faults), 2*n, logs.String())
	}
	for _, line := range faults {
		if !strings.Contains(line, "level=WARN") || strings.Contains(line, " kind=") {
			t.Errorf("%q: want a warning of the server's own, counted as no client's kind", line)
		}
	}
}

// TestErrorWindowCloseWaitsForItsLine: a window's timer that ends it as
// the server is done takes its counts, then writes its line; close, the
// server's last word, returned before that line was written, with
// nothing left to write itself: the line came after Run returned, or
// never, when the process exited first. close waits for it.
func TestErrorWindowCloseWaitsForItsLine(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		writing, release := make(chan struct{}), make(chan struct{})
		var mu sync.Mutex
		var written []int
		w := &errorWindow{window: time.Minute, sum: func(_ map[string]int, count int, _ string) {
			if count == 2 {
				close(writing)
				<-release // a handler slow to write
			}
			mu.Lock()
			written = append(written, count)
			mu.Unlock()
		}}
		for range 3 {
			w.add("kind", "line")
		}
		<-writing // the window ended: its timer writes its line
		closed := make(chan struct{})
		go func() {
			w.close()
			close(closed)
		}()
		synctest.Wait()
		select {
		case <-closed:
			t.Error("close returned before the window's line was written")
		default:
		}
		close(release)
		<-closed
		mu.Lock()
		defer mu.Unlock()
		if len(written) != 1 || written[0] != 2 {
			t.Errorf("lines written with counts %v, want one of 2", written)
		}
	})
}

// TestClientErrorKindWarnsOncePerWindow: the windows are the same for
// every kind, one after another while any kind has lines: a kind whose
// first line came at a window's end, and which that window counted none
// of, warns again at its next line in the window after, however soon.
// Each kind warns at most once a window.
func TestClientErrorKindWarnsOncePerWindow(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		var logs lockedBuffer
		errLog, flush := serverErrorLog(slog.NewTextHandler(&logs, nil), nil)
		defer flush()
		goaway := func() { errLog.Print("http2: received GOAWAY [FrameHeader GOAWAY len=8], starting graceful shutdown") }
		settings := func() { errLog.Print("timeout waiting for SETTINGS frames from 127.0.0.1:8111") }
		goaway() // opens the window
		time.Sleep(clientErrorWindow - time.Second)
		settings() // the window's last second
		goaway()
		time.Sleep(2 * time.Second)
		settings() // the next window's first seconds
		goaway()
		time.Sleep(clientErrorWindow / 2)
		settings()
		goaway()
		synctest.Wait()
		warnings := map[string]int{}
		for line := range strings.Lines(logs.String()) {
			if strings.Contains(line, "level=WARN") {
				warnings[strings.TrimSuffix(line[strings.LastIndex(line, " kind=")+len(" kind="):], "\n")]++
			}
		}
		if want := map[string]int{"http2_goaway": 1, "http2_settings_timeout": 2}; !maps.Equal(warnings, want) {
			t.Errorf("warnings %v, want %v:\n%s", warnings, want, logs.String())
		}
	})
}

// pkiValidFor returns a self-signed certificate for 127.0.0.1, valid from
// from to to, relative to now, and its key, in files.
func pkiValidFor(t *testing.T, from, to time.Duration) testpki.PKI {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	now := time.Now()
	der, err := x509.CreateCertificate(rand.Reader, &x509.Certificate{
		SerialNumber: big.NewInt(1),
		Subject:      pkix.Name{CommonName: "127.0.0.1"},
		IPAddresses:  []net.IP{net.IPv4(127, 0, 0, 1)},
		NotBefore:    now.Add(from),
		NotAfter:     now.Add(to),
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}, &x509.Certificate{Subject: pkix.Name{CommonName: "127.0.0.1"}}, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	keyDER, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	pki := testpki.PKI{CertFile: filepath.Join(dir, "cert.pem"), KeyFile: filepath.Join(dir, "key.pem"), Roots: x509.NewCertPool()}
	if err := os.WriteFile(pki.CertFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(pki.KeyFile, pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: keyDER}), 0o600); err != nil {
		t.Fatal(err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	pki.Roots.AddCert(cert)
	return pki
}

// TestTLSCertificateOutOfValidityWarnsAtStart: a certificate that has
// expired, or is not valid yet, when the server starts is one every
// client refuses: the start warns, naming the file and the date. It
// started without a word, and only the first refused handshake said so.
// A valid one is no warning.
func TestTLSCertificateOutOfValidityWarnsAtStart(t *testing.T) {
	for _, valid := range []struct {
		name, want string
		from, to   time.Duration
	}{
		{"expired", "the certificate has expired", -48 * time.Hour, -time.Hour},
		{"not yet valid", "the certificate is not valid yet", time.Hour, 48 * time.Hour},
		{"valid", "", -time.Hour, 48 * time.Hour},
	} {
		t.Run(valid.name, func(t *testing.T) {
			pki := pkiValidFor(t, valid.from, valid.to)
			_, logs, _ := startTLSLogging(t, pki) // returns once listening is logged
			var warned []string
			for line := range strings.Lines(logs.String()) {
				if strings.Contains(line, "level=WARN") && strings.Contains(line, "server.tls") {
					warned = append(warned, line)
				}
			}
			switch {
			case valid.want == "" && len(warned) > 0:
				t.Errorf("a valid certificate warned: %q", warned)
			case valid.want != "" && (len(warned) != 1 || !strings.Contains(warned[0], valid.want) || !strings.Contains(warned[0], pki.CertFile)):
				t.Errorf("warnings %q, want one saying %q and naming %s:\n%s", warned, valid.want, pki.CertFile, logs.String())
			}
		})
	}
}

// TestTLSExpiredCertificateWarnsEach: once the served certificate has
// expired, or while it is not yet valid (a clock behind, a certificate
// dated ahead), every client refuses every handshake: the service is down,
// and the server's certificate is at fault, not a client. Each refusal
// then warns, as the server's own faults do; it was counted as a
// client's tls_refused, one warning for the whole outage and an info
// count a minute.
func TestTLSExpiredCertificateWarnsEach(t *testing.T) {
	for _, valid := range []struct {
		name     string
		from, to time.Duration
	}{{"expired", -48 * time.Hour, -time.Hour}, {"not yet valid", time.Hour, 48 * time.Hour}} {
		t.Run(valid.name, func(t *testing.T) {
			pki := pkiValidFor(t, valid.from, valid.to)
			addr, logs, waitClosed := startTLSLogging(t, pki)
			const n = 3
			for range n {
				conn, err := tls.Dial("tcp", addr, &tls.Config{RootCAs: pki.Roots, ServerName: "127.0.0.1"})
				if err == nil {
					conn.Close()
					t.Fatal("a client completed a handshake with a certificate out of its validity")
				}
				waitClosed("a handshake refused for a certificate out of its validity")
			}
			var refused []string
			for line := range strings.Lines(logs.String()) {
				if strings.Contains(line, "TLS handshake error") {
					refused = append(refused, line)
				}
			}
			if len(refused) != n {
				t.Fatalf("%d handshake errors logged, want %d:\n%s", len(refused), n, logs.String())
			}
			for _, line := range refused {
				if !strings.Contains(line, "level=WARN") || !strings.Contains(line, "remote error: tls: ") || strings.Contains(line, " kind=") {
					t.Errorf("%q: want a warning of the server's own, counted as no client's kind", line)
				}
			}
		})
	}
}

// TestClientErrorsSummedUpBeforeStopped: the summary of the window open
// at shutdown comes before "stopped", the server's last line: it came
// after, as if the stopped server still served.
func TestClientErrorsSummedUpBeforeStopped(t *testing.T) {
	cfg := config.Default()
	cfg.Server.H2C = true
	var logs lockedBuffer
	base, stop := startMainReturning(t, cfg, slog.New(slog.NewTextHandler(&logs, nil)))
	for range 2 {
		h2cSend(t, strings.TrimPrefix(base, "http://"), func(fr *http2.Framer) error {
			if err := fr.WriteSettings(); err != nil {
				return err
			}
			return fr.WriteGoAway(0, http2.ErrCodeProtocol, nil)
		})
	}
	if err := stop(); err != nil {
		t.Fatal(err)
	}
	if kinds, lines := summaryCounts(t, logs.String()); lines != 1 || kinds["http2_goaway"] != 1 {
		t.Errorf("%d summary lines counting %v, want one counting 1 GOAWAY:\n%s", lines, kinds, logs.String())
	}
	if last := logs.tail(200); !strings.HasSuffix(strings.TrimSpace(last), "msg=stopped") {
		t.Errorf("the log ends %q, want the stopped line", last)
	}
}

// TestTLSExpiredCertificateWithoutLeaf: with GODEBUG=x509keypairleaf=0,
// which an operator may set for an old certificate's sake, a loaded pair
// carries no parsed Leaf, and an expired certificate was neither warned
// of at start nor taken for the server's fault at each refused
// handshake: both looked at the Leaf alone.
func TestTLSExpiredCertificateWithoutLeaf(t *testing.T) {
	t.Setenv("GODEBUG", "x509keypairleaf=0")
	pki := pkiValidFor(t, -48*time.Hour, -time.Hour)
	if cert, err := tls.LoadX509KeyPair(pki.CertFile, pki.KeyFile); err != nil || cert.Leaf != nil {
		t.Fatalf("GODEBUG=x509keypairleaf=0 not in effect: err %v, leaf %v", err, cert.Leaf != nil)
	}
	addr, logs, waitClosed := startTLSLogging(t, pki)
	if !strings.Contains(logs.String(), `level=WARN msg="server.tls: the certificate has expired: every client will refuse it" server.tls.cert_file=`+pki.CertFile) {
		t.Errorf("no warning at start of the expired certificate:\n%s", logs.String())
	}
	conn, err := tls.Dial("tcp", addr, &tls.Config{RootCAs: pki.Roots, ServerName: "127.0.0.1"})
	if err == nil {
		conn.Close()
		t.Fatal("a client completed a handshake with an expired certificate")
	}
	waitClosed("a handshake refused for an expired certificate")
	for line := range strings.Lines(logs.String()) {
		if strings.Contains(line, "TLS handshake error") && (!strings.Contains(line, "level=WARN") || strings.Contains(line, " kind=")) {
			t.Errorf("%q: want a warning of the server's own, counted as no client's kind", line)
		}
	}
}
