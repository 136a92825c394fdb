package config

import (
	"errors"
	"slices"
	"strings"
)

// CheckEnv reports every variable in environ ("NAME=value" entries, as
// os.Environ returns them) that starts with SSEHUB_, in any case, but
// names no setting: usually a typo, or a name in lower case, which would
// otherwise be ignored without a word. Each is a *KeyError wrapping
// ErrUnknownKey; values are not shown.
func CheckEnv(environ []string) error {
	known := map[string]bool{}
	for _, k := range Keys() {
		known[EnvName(k)] = true
	}
	var errs []error
	for _, kv := range environ {
		name, _, _ := strings.Cut(kv, "=")
		if !strings.HasPrefix(strings.ToUpper(name), "SSEHUB_") || known[name] {
			continue
		}
		hint := closestEnv(name, known)
		if upper := strings.ToUpper(name); known[upper] {
			hint = "did you mean " + upper + "? (names are upper case)"
		}
		errs = append(errs, &KeyError{Key: name, Msg: "no setting has this environment variable; " + hint, Err: ErrUnknownKey})
	}
	return errors.Join(errs...)
}

// closestEnv suggests the known name fewest edits away from name (a
// letter added, dropped or changed), when a typo explains it: at most
// maxTypoEdits; ties go to the first in order. Else, a name cut short
// (SSEHUB_STREAM_HEARTBEAT) gets the first known name it starts.
func closestEnv(name string, known map[string]bool) string {
	names := make([]string, 0, len(known))
	for k := range known {
		names = append(names, k)
	}
	slices.Sort(names)
	best, bestEdits := "", maxTypoEdits+1
	for _, k := range names {
		if n := edits(name, k); n < bestEdits {
			best, bestEdits = k, n
		}
	}
	if best == "" {
		if i := slices.IndexFunc(names, func(k string) bool { return strings.HasPrefix(k, name+"_") }); i >= 0 {
			best = names[i]
		}
	}
	if best == "" {
		return "the README's configuration table lists them"
	}
	return "did you mean " + best + "?"
}

// maxTypoEdits is the most edits closestEnv takes for a typo.
const maxTypoEdits = 3

// edits is the Levenshtein distance between a and b, in bytes.
func edits(a, b string) int {
	row := make([]int, len(b)+1)
	for j := range row {
		row[j] = j
	}
	for i := 1; i <= len(a); i++ {
		diag := row[0]
		row[0] = i
		for j := 1; j <= len(b); j++ {
			cost := 1
			if a[i-1] == b[j-1] {
				cost = 0
			}
			diag, row[j] = row[j], min(row[j]+1, row[j-1]+1, diag+cost)
		}
	}
	return row[len(b)]
}
