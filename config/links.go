package config

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"
)

// maxLinks bounds the links missingTarget follows, as the kernel does
// (40 on Linux): a loop of links ends there.
const maxLinks = 40

// missingTarget returns err, the error of opening path, naming the file
// that is missing when path is a symbolic link, or a chain of them, to a
// file that does not exist: "no such file or directory" after the link's
// name pointed at a file plainly there (a Kubernetes secret's link, a
// mount or a deploy's link whose target went missing). Any other error,
// or one of a path that is no link, is returned as it is.
func missingTarget(path string, err error) error {
	if !errors.Is(err, fs.ErrNotExist) {
		return err
	}
	p := path
	for range maxLinks {
		st, lerr := os.Lstat(p)
		switch {
		case errors.Is(lerr, fs.ErrNotExist) && p != path:
			return fmt.Errorf("a symbolic link to %q: %w", p, err)
		case lerr != nil || st.Mode()&fs.ModeSymlink == 0:
			return err
		}
		target, rerr := os.Readlink(p)
		if rerr != nil {
			return err
		}
		if !filepath.IsAbs(target) {
			dir := filepath.Dir(p)
			if slices.Contains(strings.Split(filepath.ToSlash(target), "/"), "..") {
				// The kernel takes .. in the directory the link is in,
				// which a linked directory on the way leaves elsewhere
				// than Join's lexical parent.
				if real, err := filepath.EvalSymlinks(dir); err == nil {
					dir = real
				}
			}
			target = filepath.Join(dir, target)
		}
		p = target
	}
	return err
}
