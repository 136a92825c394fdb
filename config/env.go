package config

import (
	"errors"
	"path"
	"regexp"
	"slices"
	"strings"
)

// CheckEnv reports every variable in environ ("NAME=value" entries, as
// os.Environ returns them) that starts with SSEHUB_, in any case, but
// names no setting: usually a typo, or a name in lower case, which would
// otherwise be ignored without a word. The variables Kubernetes sets for a
// Service named ssehub or ssehub-... are not (serviceLinkSuffix), nor those
// a Docker legacy link with such an alias sets (dockerLinkSuffix). Each is a
// *KeyError wrapping ErrUnknownKey; values are not shown.
func CheckEnv(environ []string) error {
	known := map[string]bool{}
	for _, k := range Keys() {
		known[EnvName(k)] = true
	}
	services, links := map[string]bool{}, map[string]bool{}
	for _, kv := range environ {
		name, value, _ := strings.Cut(kv, "=")
		if svc, ok := strings.CutSuffix(name, "_SERVICE_HOST"); ok {
			services[svc] = true
		}
		if alias, ok := strings.CutSuffix(name, "_NAME"); ok && linkName(alias, value) {
			links[alias] = true
		}
	}
	var errs []error
	for _, kv := range environ {
		name, _, _ := strings.Cut(kv, "=")
		if !strings.HasPrefix(strings.ToUpper(name), "SSEHUB_") || known[name] ||
			linked(name, services, serviceLinkSuffix) || linked(name, links, dockerLinkSuffix) {
			continue
		}
		upper := strings.ToUpper(name)
		hint := closestEnv(upper, known)
		if known[upper] {
			hint = "did you mean " + upper + "?"
		}
		if name != upper {
			hint += " (names are upper case)"
		}
		errs = append(errs, &KeyError{Key: name, Msg: "no setting has this environment variable; " + hint, Err: ErrUnknownKey})
	}
	return errors.Join(errs...)
}

// serviceLinkSuffix matches what Kubernetes appends to a Service's name
// (upper case, - as _) in the variables it gives every pod of the
// namespace: _SERVICE_HOST, _SERVICE_PORT, _SERVICE_PORT_<port name>,
// _PORT and _PORT_<port>_<protocol>, the last with _PROTO, _PORT or _ADDR.
var serviceLinkSuffix = regexp.MustCompile(`^_(SERVICE_HOST|SERVICE_PORT(_[A-Z0-9_]+)?|PORT(_[0-9]+_(TCP|UDP|SCTP)(_PROTO|_PORT|_ADDR)?)?)$`)

// dockerLinkSuffix matches what Docker's legacy links (docker run --link
// container:alias) append to the alias (upper case, - as _) in the
// variables they give the container: _NAME, _PORT, _PORT_<port>_<protocol>
// with nothing, _ADDR, _PORT, _PROTO, or for a range of ports _START,
// _PORT_START, _END, _PORT_END, and _ENV_ before each of the linked
// container's own variables.
var dockerLinkSuffix = regexp.MustCompile(`^_(NAME|PORT(_[0-9]+_(TCP|UDP|SCTP)(_ADDR|_PORT|_PROTO|_START|_PORT_START|_END|_PORT_END)?)?|ENV_.+)$`)

// linkName reports whether value, the value of the variable alias_NAME, is
// the name Docker gives a legacy link there: /<container>/<alias>, the
// alias written as Docker writes it in alias.
func linkName(alias, value string) bool {
	dir, base := path.Split(value)
	return strings.HasPrefix(dir, "/") && len(dir) > 1 && strings.ReplaceAll(strings.ToUpper(base), "-", "_") == alias
}

// linked reports whether name is one of the variables suffix matches for
// one of prefixes: the Kubernetes Services whose _SERVICE_HOST variables,
// or the Docker links whose _NAME variables, are present. A Service named
// ssehub or ssehub-nats gives every pod SSEHUB_SERVICE_HOST or
// SSEHUB_NATS_PORT_4222_TCP, and docker run --link ssehub:ssehub gives
// SSEHUB_NAME and SSEHUB_ENV_..., which are no settings and no typos
// either. No setting is named so, and a name of that form without its
// Service's _SERVICE_HOST or its link's _NAME (SSEHUB_SERVER_PORT) is
// still reported.
func linked(name string, prefixes map[string]bool, suffix *regexp.Regexp) bool {
	for p := range prefixes {
		if rest, ok := strings.CutPrefix(name, p); ok && suffix.MatchString(rest) {
			return true
		}
	}
	return false
}

// closestEnv suggests the known name fewest edits away from name (a
// letter added, dropped or changed), when a typo explains it: at most
// maxTypoEdits; ties go to the first in order. Else, a name cut short
// (SSEHUB_STREAM_HEARTBEAT) gets the first known name it starts. A
// section's own name (SSEHUB_SERVER_TLS) gets the section's variables
// first: it is neither.
func closestEnv(name string, known map[string]bool) string {
	for s := range sections() {
		if name == EnvName(s) {
			return sectionEnv(name + "_")
		}
	}
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
		return sectionEnv(name)
	}
	return "did you mean " + best + "?"
}

// sectionEnv lists the variables of the innermost section whose variables
// name starts as theirs do (SSEHUB_SERVER_PORT: server's), or points to
// the README when it is in none.
func sectionEnv(name string) string {
	secs := sections()
	sec := ""
	for s := range secs {
		if strings.HasPrefix(name, EnvName(s)+"_") && len(s) > len(sec) {
			sec = s
		}
	}
	var vars []string
	for _, k := range Keys() {
		if sec != "" && sectionOf(k, secs) == sec {
			vars = append(vars, EnvName(k))
		}
	}
	if len(vars) == 0 {
		return "the README's configuration table lists them"
	}
	return "those of " + sec + " are " + strings.Join(vars, ", ")
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
