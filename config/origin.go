package config

import (
	"errors"
	"net/netip"
	"strconv"
	"strings"
	"unicode"

	"golang.org/x/net/publicsuffix"
)

// origin is a parsed origin, or an origin pattern whose host may start
// with the one-label wildcard "*.".
type origin struct {
	scheme string // "http" or "https", lower case
	host   string // lower case; an IPv6 address keeps its brackets
	port   string // decimal, or "" for the scheme's default port
}

// Reasons parseOrigin gives for rejecting a string.
var (
	errOriginForm     = errors.New("want scheme://host[:port]")
	errOriginScheme   = errors.New("scheme must be http or https")
	errOriginUserinfo = errors.New("no userinfo allowed")
	errOriginPath     = errors.New("no path, query or fragment allowed")
	errOriginHost     = errors.New("bad host")
	errOriginPort     = errors.New("port must be 1-65535")
	errOriginWildcard = errors.New("a wildcard must be the whole first label, as in https://*.example.com")
	errOriginIDN      = errors.New("an international domain name is written in its ASCII form, xn--..., as browsers send it")
	errOriginIPv4     = errors.New("an IPv4 address is four decimal numbers without leading zeros, as browsers send it (127.0.0.1); a host name's last label is never a number")
)

// parseOrigin parses s as scheme://host[:port], the form browsers send in
// the Origin header. With wildcard, the host's first label may be "*".
// Scheme and host are lower-cased and a default port (80 for http, 443 for
// https) is dropped, so equal origins compare equal.
func parseOrigin(s string, wildcard bool) (origin, error) {
	scheme, rest, ok := strings.Cut(s, "://")
	if !ok || rest == "" || strings.ContainsAny(s, " \t\r\n") {
		return origin{}, errOriginForm
	}
	o := origin{scheme: strings.ToLower(scheme)}
	if o.scheme != "http" && o.scheme != "https" {
		return origin{}, errOriginScheme
	}
	if strings.Contains(rest, "@") {
		return origin{}, errOriginUserinfo
	}
	if strings.ContainsAny(rest, "/?#\\") {
		return origin{}, errOriginPath
	}
	host, port, err := splitHostPort(rest)
	if err != nil {
		return origin{}, err
	}
	if o.host, err = checkHost(host, wildcard); err != nil {
		return origin{}, err
	}
	if port != "" {
		n, err := strconv.Atoi(port)
		if err != nil || n < 1 || n > 65535 || strings.ContainsAny(port, "+-") {
			return origin{}, errOriginPort
		}
		if !(o.scheme == "http" && n == 80) && !(o.scheme == "https" && n == 443) {
			o.port = strconv.Itoa(n)
		}
	}
	return o, nil
}

// splitHostPort splits "host", "host:port", "[v6]" or "[v6]:port".
func splitHostPort(s string) (host, port string, err error) {
	if strings.HasPrefix(s, "[") {
		end := strings.Index(s, "]")
		if end < 0 {
			return "", "", errOriginHost
		}
		host, rest := s[:end+1], s[end+1:]
		if rest == "" {
			return host, "", nil
		}
		if !strings.HasPrefix(rest, ":") || rest == ":" {
			return "", "", errOriginPort
		}
		return host, rest[1:], nil
	}
	host, port, found := strings.Cut(s, ":")
	if found && port == "" {
		return "", "", errOriginPort
	}
	return host, port, nil
}

// checkHost validates a host name, IPv4 address or bracketed IPv6 address
// and returns it lower-cased, an IPv6 address in its shortest form, so that
// equal hosts compare equal. With wildcard, the first label may be "*".
//
// A host whose last label is a number (decimal, or 0x hex) is an IPv4
// address to a browser, which sends it as four decimal numbers: written
// otherwise (127.000.0.1, 2130706433), or under a wildcard, it would
// never match.
func checkHost(host string, wildcard bool) (string, error) {
	host = strings.ToLower(host)
	if inner, ok := strings.CutPrefix(host, "["); ok {
		inner, ok = strings.CutSuffix(inner, "]")
		ip, err := netip.ParseAddr(inner)
		if !ok || err != nil || !ip.Is6() || ip.Zone() != "" {
			return "", errOriginHost
		}
		return "[" + ip.String() + "]", nil
	}
	if strings.ContainsFunc(host, func(r rune) bool { return r > unicode.MaxASCII }) {
		return "", errOriginIDN
	}
	labels := strings.Split(host, ".")
	if numericLabel(labels[len(labels)-1]) {
		if ip, err := netip.ParseAddr(host); err != nil || !ip.Is4() {
			if labels[0] == "*" {
				return "", errOriginWildcard
			}
			return "", errOriginIPv4
		}
		return host, nil
	}
	for i, label := range labels {
		if strings.Contains(label, "*") {
			if !wildcard || i != 0 || label != "*" || len(labels) < 2 {
				return "", errOriginWildcard
			}
			continue
		}
		if !validLabel(label) {
			return "", errOriginHost
		}
	}
	return host, nil
}

// numericLabel reports whether s, a host's last label, makes the host an
// IPv4 address to a browser (the URL Standard's "ends in a number"):
// decimal digits, or 0x and hex digits.
func numericLabel(s string) bool {
	if hex, ok := strings.CutPrefix(s, "0x"); ok {
		return !strings.ContainsFunc(hex, func(r rune) bool { return !strings.ContainsRune("0123456789abcdef", r) })
	}
	return s != "" && !strings.ContainsFunc(s, func(r rune) bool { return r < '0' || r > '9' })
}

// validLabel reports whether s is a DNS label: 1 to 63 letters, digits,
// hyphens or underscores, not starting or ending with a hyphen.
func validLabel(s string) bool {
	if s == "" || len(s) > 63 || s[0] == '-' || s[len(s)-1] == '-' {
		return false
	}
	for _, r := range s {
		if !(r >= 'a' && r <= 'z' || r >= '0' && r <= '9' || r == '-' || r == '_') {
			return false
		}
	}
	return true
}

// matches reports whether o, a request's origin, is allowed by the
// pattern p: same scheme and port, and the same host or, for a "*." host,
// exactly one more label in front of the rest.
func (p origin) matches(o origin) bool {
	if p.scheme != o.scheme || p.port != o.port {
		return false
	}
	suffix, ok := strings.CutPrefix(p.host, "*")
	if !ok {
		return p.host == o.host
	}
	label, ok := strings.CutSuffix(o.host, suffix)
	return ok && label != "" && !strings.Contains(label, ".") && !strings.HasPrefix(o.host, "[")
}

// overPublicSuffix reports whether p is a wildcard over a public suffix,
// where anyone may have a site: https://*.com, https://*.co.uk, or a
// hosting provider's https://*.github.io (the Public Suffix List's
// private part). A one-label name the list does not know (*.localhost,
// *.internal, *.corp) is taken for a private network's own.
func (p origin) overPublicSuffix() bool {
	base, ok := strings.CutPrefix(p.host, "*.")
	if !ok {
		return false
	}
	suffix, icann := publicsuffix.PublicSuffix(base)
	return suffix == base && (icann || strings.Contains(base, "."))
}

// AllowOrigin reports whether origin, the value of a request's Origin
// header, is allowed by AllowedOrigins. An entry matches an equal origin
// (scheme and host compared without regard to case, a default port
// ignored); "https://*.example.com" matches https://a.example.com but
// neither https://example.com nor https://a.b.example.com; "*" matches
// every origin. Malformed origins and entries match nothing. It is a pure
// function, safe for concurrent use.
func (c CORSConfig) AllowOrigin(origin string) bool {
	o, err := parseOrigin(origin, false)
	for _, entry := range c.AllowedOrigins {
		if entry == "*" {
			return true
		}
		if err != nil {
			continue
		}
		if p, perr := parseOrigin(entry, true); perr == nil && p.matches(o) {
			return true
		}
	}
	return false
}
