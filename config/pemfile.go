package config

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"strings"
	"syscall"
	"time"
)

// MaxPEMFileBytes bounds a PEM file ssehub reads: server.tls.cert_file
// and server.tls.key_file (at start and at every check for a renewal),
// nats.ca_file and auth.jwt.public_key_file. A certificate chain is a few
// KiB, an RSA key of 16384 bits 13 KiB, a system's whole CA bundle some
// 200 KiB: 1 MiB holds any of them several times over, and refuses a file
// named by mistake (a log, a disk image, a multi-GB file) before it is
// read into memory.
const MaxPEMFileBytes = 1 << 20

// errNotRegular refuses a file that is no regular file: a FIFO, whose
// open(2) waits for a writer, a device (/dev/zero, which never ends), a
// directory.
var errNotRegular = errors.New("not a regular file")

// errPEMTooLong refuses a PEM file longer than MaxPEMFileBytes.
var errPEMTooLong = fmt.Errorf("longer than 1 MiB (%d bytes), the most a PEM file may be: a certificate chain, "+
	"a key or a CA bundle is far shorter; is it the right file?", MaxPEMFileBytes)

// ReadPEMFile returns the contents of path, a regular file of at most
// MaxPEMFileBytes. It looks before it opens, and opens without waiting:
// a FIFO, or a FIFO swapped in between the look and the open, is refused
// as not a regular file rather than waited on, as is a device. A longer
// file is refused unread past the cap. A file another process holds a
// lease on is read once the lease is given up (openNonblock). Its errors
// do not repeat path.
func ReadPEMFile(path string) ([]byte, error) {
	return ReadPEMFileContext(context.Background(), path)
}

// ReadPEMFileContext is ReadPEMFile, which stops waiting for a lease on
// the file to be given up when ctx is done, its error then holding
// context.Cause(ctx): with ctx done already, it does not wait at all.
func ReadPEMFileContext(ctx context.Context, path string) ([]byte, error) {
	if strings.HasPrefix(path, "~") {
		return nil, errTilde
	}
	if st, err := os.Stat(path); err == nil && !st.Mode().IsRegular() {
		return nil, errNotRegular
	}
	f, err := openNonblock(ctx, path)
	if err != nil {
		return nil, missingTarget(path, unwrapPath(err))
	}
	defer f.Close()
	st, err := f.Stat()
	switch {
	case err != nil:
		return nil, unwrapPath(err)
	case !st.Mode().IsRegular():
		return nil, errNotRegular
	case st.Size() > MaxPEMFileBytes:
		return nil, errPEMTooLong
	}
	// The file may grow after the look: read one byte past the cap to
	// tell.
	data, err := io.ReadAll(io.LimitReader(f, MaxPEMFileBytes+1))
	switch {
	case err != nil:
		return nil, unwrapPath(err)
	case len(data) > MaxPEMFileBytes:
		return nil, errPEMTooLong
	}
	return data, nil
}

// leaseWait bounds how long openNonblock tries again a file whose lease
// is being broken: the kernel breaks one after lease-break-time, 45 s
// unless set otherwise.
var leaseWait = time.Minute

// leaseRetry is how often openNonblock tries again.
const leaseRetry = 10 * time.Millisecond

// openNonblock opens path to read without waiting for a FIFO's writer.
// Such an open is refused (EAGAIN) where another process holds a lease
// on the file (a Samba oplock, an NFS delegation), which an open that
// waits waits for the holder to give up: the file was refused, "resource
// temporarily unavailable", where os.Open read it. The kernel has asked
// the holder to give it up by then, and the open is tried again until
// the lease is gone, leaseWait passes or ctx is done; then the error
// holds context.Cause(ctx). After leaseWait it is a *leaseKeptError.
func openNonblock(ctx context.Context, path string) (*os.File, error) {
	wait := leaseWait
	deadline := time.Now().Add(wait)
	for {
		f, err := os.OpenFile(path, os.O_RDONLY|syscall.O_NONBLOCK, 0)
		if !errors.Is(err, syscall.EAGAIN) {
			return f, err
		}
		if !time.Now().Before(deadline) {
			return nil, &leaseKeptError{wait: wait}
		}
		t := time.NewTimer(leaseRetry)
		select {
		case <-ctx.Done():
			t.Stop()
			return nil, fmt.Errorf("another process holds a lease on it, asked to give it up: %w", context.Cause(ctx))
		case <-t.C:
		}
	}
}

// leaseKeptError reports a file whose lease its holder did not give up
// within leaseWait: the open's own error, "resource temporarily
// unavailable", named neither the lease nor the wait. It wraps EAGAIN.
type leaseKeptError struct{ wait time.Duration }

func (e *leaseKeptError) Error() string {
	return fmt.Sprintf("another process holds a lease on it, and did not give it up within %v of being asked to", e.wait)
}

func (e *leaseKeptError) Unwrap() error { return syscall.EAGAIN }

// unwrapPath returns the error inside a *fs.PathError, whose path the
// caller's message names already; any other error as it is.
func unwrapPath(err error) error {
	if pe, ok := errors.AsType[*fs.PathError](err); ok {
		return pe.Err
	}
	return err
}
