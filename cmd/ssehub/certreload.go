package main

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/ssehub/ssehub/config"
)

// certCheckInterval is how often, at most, a TLS handshake looks at
// server.tls's files for a renewed pair. The check reads the two files,
// a few KiB, made by whichever handshake finds it due: no goroutine
// watches the files.
const certCheckInterval = time.Second

// certReloader serves the certificate in server.tls's files and picks up
// a renewed pair without a restart: a handshake at least interval after
// the last check reads both files and, when either's contents changed,
// loads the pair. The contents, not modification times and sizes: a
// renewal of the same size can keep the previous files' times (a copy
// that keeps its source's, files from a Nix store, a rewrite within one
// tick of the file system's clock). Reading follows symlinks, so a
// swapped link (a Kubernetes secret volume, certbot's live directory)
// counts as a change. A pair that does not load (caught half-written, or
// a key that is not the certificate's) leaves the previous certificate
// serving, is logged once, as is each other reason the files cannot be
// read, and is tried again at the next check. Its methods are safe for
// concurrent use.
type certReloader struct {
	certFile, keyFile string
	interval          time.Duration
	log               *slog.Logger

	mu       sync.Mutex
	cert     *tls.Certificate // served
	next     time.Time        // when the files are due a check
	checking bool             // a handshake is checking the files

	// The check's own state, read and written only by the one check
	// under way (checking), outside mu.
	loaded pairPEM // the files as cert was loaded from them
	tried  pairPEM // the files at the last check: warned about once
	// triedErr is why the last check could not read the files, "" when
	// it could: another file, or another reason, is warned about again.
	triedErr string
}

// noLeaseWait is the context a check reads server.tls's files in: done
// already, so that it does not wait for a lease on one of them to be
// given up (see certReloader.read).
var noLeaseWait = func() context.Context {
	ctx, cancel := context.WithCancelCause(context.Background())
	cancel(errors.New("not waited for during a TLS handshake: the next check reads it"))
	return ctx
}()

// pairPEM is what a check compares of the two files: their contents.
// The zero value stands for a pair that could not be read.
type pairPEM struct {
	cert, key []byte
}

func (p pairPEM) equal(q pairPEM) bool {
	return bytes.Equal(p.cert, q.cert) && bytes.Equal(p.key, q.key)
}

// load parses the pair. A certificate file that ends in a block cut
// short does not load: it was caught half-written, and its complete
// blocks would serve a chain short of its intermediates, which a client
// that needs them to verify the leaf refuses. The certificate's Leaf is
// always set, which the validity warnings read: tls.X509KeyPair leaves it
// nil with GODEBUG=x509keypairleaf=0, and an expired certificate was then
// served without a word.
func (p pairPEM) load() (tls.Certificate, error) {
	rest := p.cert
	for block := (&pem.Block{}); block != nil; {
		block, rest = pem.Decode(rest)
	}
	if bytes.Contains(rest, []byte("-----BEGIN")) {
		return tls.Certificate{}, errors.New("tls: the certificate file ends in a PEM block cut short")
	}
	cert, err := tls.X509KeyPair(p.cert, p.key)
	if err == nil && cert.Leaf == nil {
		// X509KeyPair parsed this certificate already: it parses.
		cert.Leaf, err = x509.ParseCertificate(cert.Certificate[0])
	}
	return cert, err
}

// newCertReloader loads the pair in certFile and keyFile, failing as
// start-up should when it does not load, and checks them again at most
// every interval. Its read of the files waits for a lease another
// process holds on one until ctx is done, the error then holding
// context.Cause(ctx) (a signal).
func newCertReloader(ctx context.Context, certFile, keyFile string, interval time.Duration, log *slog.Logger) (*certReloader, error) {
	r := &certReloader{certFile: certFile, keyFile: keyFile, interval: interval, log: log}
	files, err := r.read(ctx)
	var cert tls.Certificate
	if err == nil {
		cert, err = files.load()
	}
	if err != nil {
		return nil, fmt.Errorf("server.tls.cert_file %q, server.tls.key_file %q: %w", certFile, keyFile, err)
	}
	r.cert, r.loaded, r.tried = &cert, files, files
	r.next = time.Now().Add(interval)
	r.warnOutOfValidity(cert)
	return r, nil
}

// warnOutOfValidity warns when cert has expired or is not valid yet (a
// clock behind, a certificate dated ahead): every client refuses it, and
// the start said nothing of it, only each refused handshake did.
func (r *certReloader) warnOutOfValidity(cert tls.Certificate) {
	if cert.Leaf == nil { // load sets it
		return
	}
	switch now := time.Now(); {
	case now.After(cert.Leaf.NotAfter):
		r.log.Warn("server.tls: the certificate has expired: every client will refuse it",
			"server.tls.cert_file", r.certFile, "not_after", cert.Leaf.NotAfter)
	case now.Before(cert.Leaf.NotBefore):
		r.log.Warn("server.tls: the certificate is not valid yet (is the clock right?): every client will refuse it",
			"server.tls.cert_file", r.certFile, "not_before", cert.Leaf.NotBefore)
	}
}

// GetCertificate is tls.Config.GetCertificate: it returns the served
// certificate, after checking the files when a check is due. The check
// reads them without r.mu held: a read that stalls (a hung network file
// system, an on-access scanner slow to answer) holds up its own
// handshake, while every other is served the certificate so far at
// once, where each waited behind the lock as long as the file system
// did. The next check is due interval after this one ends.
func (r *certReloader) GetCertificate(*tls.ClientHelloInfo) (*tls.Certificate, error) {
	r.mu.Lock()
	if r.checking || time.Now().Before(r.next) {
		defer r.mu.Unlock()
		return r.cert, nil
	}
	r.checking = true
	r.mu.Unlock()
	renewed := r.check()
	r.mu.Lock()
	defer r.mu.Unlock()
	if renewed != nil {
		r.cert = renewed
	}
	r.checking = false
	r.next = time.Now().Add(r.interval)
	return r.cert, nil
}

// check returns the pair loaded when the files changed since it was
// loaded, nil when they did not or it does not load. It is called
// without r.mu, by one handshake at a time (r.checking).
func (r *certReloader) check() *tls.Certificate {
	files, err := r.read(noLeaseWait)
	// A pair not read is the zero pair whatever kept it from being read:
	// its error tells one problem from the next (the certificate file
	// missing, then the key file).
	readErr := ""
	if err != nil {
		readErr = err.Error()
	}
	changed := !files.equal(r.tried) || readErr != r.triedErr
	r.tried, r.triedErr = files, readErr
	if err == nil && files.equal(r.loaded) {
		return nil
	}
	var cert tls.Certificate
	if err == nil {
		cert, err = files.load()
	}
	if err == nil {
		// A key crypto/tls signs nothing with (a 512-bit RSA key),
		// which stops the start (config's check): the renewal was
		// served, and every handshake failed.
		err = config.CheckTLSKey(cert.PrivateKey)
	}
	if err != nil {
		if changed {
			r.log.Warn("server.tls: the pair on disk does not load: still serving the previous certificate",
				"server.tls.cert_file", r.certFile, "server.tls.key_file", r.keyFile, "err", err)
		}
		return nil
	}
	r.loaded = files
	var notAfter time.Time
	if cert.Leaf != nil { // load sets it
		notAfter = cert.Leaf.NotAfter
	}
	r.log.Info("server.tls: loaded a renewed certificate",
		"server.tls.cert_file", r.certFile, "server.tls.key_file", r.keyFile, "not_after", notAfter)
	r.warnOutOfValidity(cert)
	return &cert
}

// read returns the files' contents, or the zero pair and the error of
// the first that cannot be read, naming its key. They are read as at
// start (config.ReadPEMFile): a FIFO swapped in for either (a tool that
// hands out secrets may make one) is refused, not waited on, and so is a
// file longer than config.MaxPEMFileBytes. os.ReadFile waited for the
// FIFO's writer, and every handshake hung behind it.
// A lease another process holds on either (a Samba oplock, an NFS
// delegation) is waited for until ctx is done: at start, until it is
// given up; at a check, not at all (noLeaseWait), the open having asked
// its holder to give it up and the next check reading the file, where
// waiting hung the handshake until then, up to the kernel's
// lease-break-time (45 s).
func (r *certReloader) read(ctx context.Context) (pairPEM, error) {
	c, err := config.ReadPEMFileContext(ctx, r.certFile)
	if err != nil {
		return pairPEM{}, fmt.Errorf("server.tls.cert_file: %w", err)
	}
	k, err := config.ReadPEMFileContext(ctx, r.keyFile)
	if err != nil {
		return pairPEM{}, fmt.Errorf("server.tls.key_file: %w", err)
	}
	return pairPEM{c, k}, nil
}
