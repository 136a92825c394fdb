package main

import (
	"crypto/tls"
	"fmt"
	"log/slog"
	"os"
	"sync"
	"time"
)

// certCheckInterval is how often, at most, a TLS handshake looks at
// server.tls's files for a renewed pair. The check is two stats, made by
// whichever handshake finds it due: no goroutine watches the files.
const certCheckInterval = time.Second

// certReloader serves the certificate in server.tls's files and picks up
// a renewed pair without a restart: a handshake at least interval after
// the last check stats both files and, when either's modification time
// or size changed, loads the pair. Stat follows symlinks, so a swapped
// link (a Kubernetes secret volume, certbot's live directory) counts as a
// change. A pair that does not load (caught half-written, or a key that
// is not the certificate's) leaves the previous certificate serving, is
// logged once and tried again at the next check. Its methods are safe
// for concurrent use.
type certReloader struct {
	certFile, keyFile string
	interval          time.Duration
	log               *slog.Logger

	mu     sync.Mutex
	cert   *tls.Certificate // served
	loaded pairStamp        // the files as cert was loaded from them
	tried  pairStamp        // the files at the last check: warned about once
	next   time.Time        // when the files are due a check
}

// pairStamp is what a check compares of the two files: modification
// times in Unix nanoseconds, and sizes. The zero value stands for a pair
// that could not be stat'ed.
type pairStamp struct {
	certMod, certSize int64
	keyMod, keySize   int64
}

// newCertReloader loads the pair in certFile and keyFile, failing as
// start-up should when it does not load, and checks them again at most
// every interval.
func newCertReloader(certFile, keyFile string, interval time.Duration, log *slog.Logger) (*certReloader, error) {
	r := &certReloader{certFile: certFile, keyFile: keyFile, interval: interval, log: log}
	stamp, _ := r.stat() // before loading: a change made meanwhile is seen at the next check
	cert, err := tls.LoadX509KeyPair(certFile, keyFile)
	if err != nil {
		return nil, fmt.Errorf("server.tls.cert_file %q, server.tls.key_file %q: %w", certFile, keyFile, err)
	}
	r.cert, r.loaded, r.tried = &cert, stamp, stamp
	r.next = time.Now().Add(interval)
	return r, nil
}

// GetCertificate is tls.Config.GetCertificate: it returns the served
// certificate, after checking the files when a check is due.
func (r *certReloader) GetCertificate(*tls.ClientHelloInfo) (*tls.Certificate, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if now := time.Now(); !now.Before(r.next) {
		r.next = now.Add(r.interval)
		r.check()
	}
	return r.cert, nil
}

// check loads the pair when the files changed since it was loaded; r.mu
// is held.
func (r *certReloader) check() {
	stamp, err := r.stat()
	changed := stamp != r.tried
	r.tried = stamp
	if err == nil && stamp == r.loaded {
		return
	}
	var cert tls.Certificate
	if err == nil {
		cert, err = tls.LoadX509KeyPair(r.certFile, r.keyFile)
	}
	if err != nil {
		if changed {
			r.log.Warn("server.tls: the pair on disk does not load: still serving the previous certificate",
				"server.tls.cert_file", r.certFile, "server.tls.key_file", r.keyFile, "err", err)
		}
		return
	}
	r.cert, r.loaded = &cert, stamp
	var notAfter time.Time
	if cert.Leaf != nil { // nil only with GODEBUG=x509keypairleaf=0
		notAfter = cert.Leaf.NotAfter
	}
	r.log.Info("server.tls: loaded a renewed certificate",
		"server.tls.cert_file", r.certFile, "server.tls.key_file", r.keyFile, "not_after", notAfter)
}

// stat returns the files' stamp, or the zero stamp and the error of the
// first that cannot be stat'ed.
func (r *certReloader) stat() (pairStamp, error) {
	c, err := os.Stat(r.certFile)
	if err != nil {
		return pairStamp{}, err
	}
	k, err := os.Stat(r.keyFile)
	if err != nil {
		return pairStamp{}, err
	}
	return pairStamp{c.ModTime().UnixNano(), c.Size(), k.ModTime().UnixNano(), k.Size()}, nil
}
