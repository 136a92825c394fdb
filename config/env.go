package config

import (
	"errors"
	"slices"
	"strings"
)

// CheckEnv reports every variable in environ ("NAME=value" entries, as
// os.Environ returns them) that starts with SSEHUB_ but names no setting:
// usually a typo, which would otherwise be ignored without a word. Each is
// a *KeyError wrapping ErrUnknownKey; values are not shown.
func CheckEnv(environ []string) error {
	known := map[string]bool{}
	for _, k := range Keys() {
		known[EnvName(k)] = true
	}
	var errs []error
	for _, kv := range environ {
		name, _, _ := strings.Cut(kv, "=")
		if strings.HasPrefix(name, "SSEHUB_") && !known[name] {
			errs = append(errs, &KeyError{Key: name, Msg: "no setting has this environment variable; " + closestEnv(name, known), Err: ErrUnknownKey})
		}
	}
	return errors.Join(errs...)
}

// closestEnv suggests the known name that shares the longest prefix with
// name.
func closestEnv(name string, known map[string]bool) string {
	names := make([]string, 0, len(known))
	for k := range known {
		names = append(names, k)
	}
	slices.Sort(names)
	best, bestLen := "", 0
	for _, k := range names {
		n := 0
		for n < len(k) && n < len(name) && k[n] == name[n] {
			n++
		}
		if n > bestLen {
			best, bestLen = k, n
		}
	}
	return "did you mean " + best + "?"
}
