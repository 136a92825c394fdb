//go:build unix && (!solaris || illumos)

package natsserver

import (
	"errors"
	"os"
	"path/filepath"
	"syscall"
)

// lockStore takes the lock of the store in dir, a lock file there that
// one open file at a time may hold (flock), and returns the function
// that lets it go. A store another server holds, in this process or
// another, is errStoreInUse. The system lets it go when the process
// ends, however it ends.
func lockStore(dir string) (unlock func(), err error) {
	f, err := os.OpenFile(filepath.Join(dir, lockFile), os.O_CREATE|os.O_RDWR, 0o600)
	if err != nil {
		return nil, err
	}
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB); err != nil {
		f.Close()
		if errors.Is(err, syscall.EWOULDBLOCK) {
			return nil, errStoreInUse
		}
		// A file system that has no such locks (some network ones): no
		// lock, as on a system without flock, rather than no start.
		return func() {}, nil
	}
	return func() { f.Close() }, nil
}
