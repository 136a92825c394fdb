package main

import (
	"bytes"
	"encoding/binary"
	"log/slog"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/ssehub/ssehub/internal/testpki"
)

// TestTLSReloadStalledOpenHoldsNoOtherHandshake: a check of server.tls's
// files whose open stalls (a hung network file system, an on-access
// scanner that has not answered yet: here a fanotify permission event
// the test holds) holds up its own handshake, not every other: a new
// connection meanwhile gets the certificate served so far at once. The
// check read the files with the reloader's lock held, so each handshake
// on every connection waited behind it for as long as the file system did.
func TestTLSReloadStalledOpenHoldsNoOtherHandshake(t *testing.T) {
	pki := testpki.New(t)
	base, _ := startMainLogging(t, tlsTestConfig(pki), slog.New(slog.DiscardHandler), everyHandshake)
	original := fileCert(t, pki.CertFile, pki.KeyFile)

	fan, err := unix.FanotifyInit(unix.FAN_CLASS_CONTENT|unix.FAN_CLOEXEC, unix.O_RDONLY)
	if err != nil {
		t.Skipf("no fanotify permission events: %v", err)
	}
	// Closing the group lets every open it holds go on.
	defer unix.Close(fan)
	if err := unix.FanotifyMark(fan, unix.FAN_MARK_ADD, unix.FAN_OPEN_PERM, unix.AT_FDCWD, pki.CertFile); err != nil {
		t.Skipf("no fanotify mark: %v", err)
	}
	type result struct {
		cert []byte
		err  error
	}
	handshake := func() <-chan result {
		ch := make(chan result, 1)
		go func() {
			cert, err := handshakeCert(base, pki.Roots)
			ch <- result{cert, err}
		}()
		return ch
	}
	// The first handshake's check opens the certificate file: the open
	// waits for the test's answer.
	first := handshake()
	events := make(chan unix.FanotifyEventMetadata, 1)
	go func() {
		var buf [4096]byte
		n, err := unix.Read(fan, buf[:])
		if err != nil || n < binary.Size(unix.FanotifyEventMetadata{}) {
			close(events)
			return
		}
		var ev unix.FanotifyEventMetadata
		_ = binary.Read(bytes.NewReader(buf[:n]), binary.NativeEndian, &ev)
		events <- ev
	}()
	var ev unix.FanotifyEventMetadata
	select {
	case e, ok := <-events:
		if !ok {
			t.Fatal("reading the fanotify event failed")
		}
		ev = e
	case <-time.After(10 * time.Second):
		t.Fatal("the handshake's check did not open the certificate file")
	}
	allow := func() {
		var b bytes.Buffer
		_ = binary.Write(&b, binary.NativeEndian, unix.FanotifyResponse{Fd: ev.Fd, Response: unix.FAN_ALLOW})
		if _, err := unix.Write(fan, b.Bytes()); err != nil {
			t.Errorf("answering the open: %v", err)
		}
		unix.Close(int(ev.Fd))
	}

	// Another connection meanwhile is served at once.
	select {
	case r := <-handshake():
		if r.err != nil || !bytes.Equal(r.cert, original) {
			t.Errorf("a handshake while another's check stalls: err %v, or not the certificate served so far", r.err)
		}
	case <-time.After(15 * time.Second):
		// Long: without the fix it waits for as long as the open stalls.
		t.Error("a handshake waits for another's check of the files, stalled in its open")
	}
	allow()
	if r := <-first; r.err != nil || !bytes.Equal(r.cert, original) {
		t.Errorf("the handshake whose check stalled: err %v, or not the certificate", r.err)
	}
}
