//go:build !linux

package config

import (
	"context"
	"io"
	"os"
)

// readConfigFile returns the file at path, at most maxConfigBytes and one
// byte more, so that a file longer than maxConfigBytes is told apart.
// Outside Linux a FIFO waits for its writer in open(2), which ctx does not
// end.
func readConfigFile(_ context.Context, path string) ([]byte, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	return io.ReadAll(io.LimitReader(f, maxConfigBytes+1))
}
