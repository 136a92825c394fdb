package config

import (
	"context"
	"crypto/x509"
	"errors"
	"fmt"
	"net/url"
	"os"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"unicode"
)

// natsSchemes are the URL schemes a NATS client connects with.
var natsSchemes = []string{"nats", "tls", "ws", "wss"}

// checkNATSURLs checks that urls holds at least one server URL and that
// each is scheme://host[:port] with a NATS scheme and nothing after the
// port but, for ws and wss, a path and a query, and no comma; and that
// they are all ws or wss URLs, or none is. A user name and password may
// come before the host; messages never show the password.
func checkNATSURLs(key string, urls []string) []error {
	if len(urls) == 0 {
		return []error{invalid(key, "no server: name at least one (e.g. \"nats://127.0.0.1:4222\")")}
	}
	// shown is each URL as messages show it: redacted, and, before an
	// item that goes on a URL cut at a comma (cutEnd), its scheme alone,
	// as what follows may be a password's or a token's start.
	shown := make([]string, len(urls))
	for i, s := range urls {
		shown[i] = redactURL(s)
		if i+1 < len(urls) && cutEnd(urls[i+1]) {
			if scheme, _, ok := strings.Cut(s, "://"); ok {
				shown[i] = scheme + "://xxxxx"
			} else {
				shown[i] = "xxxxx"
			}
		}
	}
	var errs []error
	first := -1
	for i, s := range urls {
		if err := checkNATSURL(s); err != nil {
			msg := fmt.Sprintf("%q is not a NATS server URL (%v", shown[i], err)
			if i > 0 && cutEnd(s) {
				msg += "; or the end of the URL before it, cut at a comma of its password or token, as a comma separates servers: write that comma as %2C"
			}
			errs = append(errs, invalidItem(key, i, msg+")"))
			continue
		}
		if first < 0 {
			first = i
		} else if ws := webSocketURL(s); ws != webSocketURL(urls[first]) {
			errs = append(errs, invalidItem(key, i, fmt.Sprintf("%q is a %s URL among %s ones (%q): the NATS client takes one kind or the other",
				shown[i], urlKind(ws), urlKind(!ws), shown[first])))
		}
	}
	return errs
}

// cutEnd reports whether s, an item of nats.url, may be the end of a URL
// that a comma in its password or token cut (nats://u:se,cret@host, a
// variable's or a YAML text's list split at its commas): an @ with no
// scheme before it.
func cutEnd(s string) bool {
	at := strings.Index(s, "@")
	return at >= 0 && !strings.Contains(s[:at], ":/")
}

// webSocketURL reports whether s, a URL checkNATSURL accepts, is a ws or
// wss one. nats.go refuses a list that mixes them with nats and tls URLs.
func webSocketURL(s string) bool {
	scheme, _, _ := strings.Cut(s, "://")
	return webSocket(scheme)
}

// urlKind names the kind of URL webSocketURL tells apart.
func urlKind(webSocket bool) string {
	if webSocket {
		return "WebSocket"
	}
	return "nats or tls"
}

// checkNATSURL checks one server URL.
func checkNATSURL(s string) error {
	if strings.ContainsFunc(s, unicode.IsSpace) {
		return errors.New("contains white space")
	}
	if strings.Contains(s, ",") {
		// The broker hands nats.go its servers joined by commas, and
		// nats.go splits them there again.
		return errors.New("contains a comma, which separates servers: list each server as an item of its own, and write a comma within a URL as %2C")
	}
	if !strings.Contains(s, "://") {
		return errors.New("no scheme: start it with nats://")
	}
	u, err := url.Parse(s)
	switch {
	case err != nil:
		return errors.New("does not parse")
	case !slices.Contains(natsSchemes, strings.ToLower(u.Scheme)):
		return fmt.Errorf("scheme must be one of %s", strings.Join(natsSchemes, ", "))
	case strings.Count(s, "@") > 1 || u.User == nil && strings.Contains(s, "@"):
		// An @ that does not end the user info: in a ws URL, which may
		// have a path, a slash in a password or token made the user
		// info before it the host, and the client looked the secret up
		// as a host name and named it in its error.
		return errors.New("an @ after the host: write a slash or @ of a password or token as %2F or %40, an @ of a path or query as %40")
	case u.Hostname() == "":
		return errors.New("no host")
	case webSocket(u.Scheme) && (u.Fragment != "" || u.Opaque != ""):
		return errors.New("nothing but a path and a query may follow host:port")
	case !webSocket(u.Scheme) && (u.Path != "" && u.Path != "/" || u.RawQuery != "" || u.Fragment != ""):
		return errors.New("nothing may follow host:port; only a ws or wss URL has a path and a query")
	}
	if p := u.Port(); p != "" || strings.HasSuffix(u.Host, ":") {
		if n, err := strconv.ParseUint(p, 10, 16); err != nil || n == 0 {
			return errors.New("port must be 1-65535")
		}
	}
	return nil
}

// webSocket reports whether scheme is ws or wss: nats.go sends such a
// URL's path and query in its WebSocket request, for a NATS server behind
// a proxy that routes on them.
func webSocket(scheme string) bool {
	return strings.EqualFold(scheme, "ws") || strings.EqualFold(scheme, "wss")
}

// redactURL returns s with the password of its user info, if any,
// replaced by xxxxx, or its user name when it has no password: NATS reads
// that as a token. It works on the text, so a URL that does not parse
// keeps its secret hidden too: the user info is all that comes before the
// last @, from the start of the authority (after ://, or after :/ or at
// the start for a URL missing its scheme or a slash). A slash in a
// password or token (base64's alphabet has one) would end it early to a
// URL parser. An @ in a ws URL's path masks more than it must; one after a
// ? or a # masks what follows it too: a query's value (?token=a@b) or a
// password's ? (u:a?b@host), it may be part of a secret.
// So is the value of a query parameter whose name says it holds a secret
// (redactQuery): a proxy in front of NATS may take a token there
// (?token=...), as WebSocket clients that cannot set headers send one.
//
// Several URLs in one text (a comma-separated list left inside a YAML
// list's item, or URLs apart by white space or a semicolon) are redacted
// each on its own, split where a separator is followed by a scheme: the
// user info taken from the first URL's :// to the last @ made of
// "nats://u:pw@a:4222,nats://tok@b:4222" the one URL "nats://u:xxxxx@b:4222",
// hiding a server and the comma the error spoke of.
func redactURL(s string) string {
	var b strings.Builder
	start := 0
	for _, m := range nextURL.FindAllStringSubmatchIndex(s, -1) {
		b.WriteString(redactOneURL(s[start:m[2]]))
		b.WriteString(s[m[2]:m[3]])
		start = m[3]
	}
	b.WriteString(redactOneURL(s[start:]))
	return b.String()
}

// nextURL matches a separator between URLs in one text (group 1), and the
// scheme of the URL after it.
var nextURL = regexp.MustCompile(`([,;\s]+)[A-Za-z][A-Za-z0-9+.\-]*:/`)

// redactOneURL is redactURL for a text of one URL.
func redactOneURL(s string) string {
	if at := strings.LastIndex(s, "@"); at >= 0 {
		start := 0
		if i := strings.Index(s[:at], "://"); i >= 0 {
			start = i + len("://")
		} else if i := strings.Index(s[:at], ":/"); i >= 0 {
			start = i + len(":/")
		}
		tail := s[at:]
		if strings.ContainsAny(s[start:at], "?#") {
			// An @ after a ? or a #: one of a query's or a fragment's
			// value, whose part after it may be a token's end, or a
			// password's ? before the user info's @. Either side may be
			// a secret's.
			tail = "@xxxxx"
		}
		s = s[:start] + redactUserinfo(s[start:at]) + tail
	}
	if q := strings.Index(s, "?"); q >= 0 {
		s = s[:q+1] + redactQuery(s[q+1:])
	}
	return s
}

// secretParams are words that, in a query parameter's name, say its value
// is a secret.
var secretParams = []string{"token", "auth", "key", "secret", "pass", "pw", "jwt", "sig", "cred", "session"}

// redactQuery returns query, the text after a URL's ?, with the value of
// every parameter (apart by & or ;) whose name holds one of secretParams,
// in any case, replaced by xxxxx, and every part without a name (no =),
// which may be a token given alone (?s3cret). It works on the text, as
// redactURL does.
func redactQuery(query string) string {
	var b strings.Builder
	for query != "" {
		// A ; separates parameters too, to some servers and proxies.
		end := strings.IndexAny(query, "&;")
		if end < 0 {
			end = len(query)
		}
		p := query[:end]
		name, _, hasValue := strings.Cut(p, "=")
		lower := strings.ToLower(name)
		switch {
		case !hasValue && p != "":
			p = "xxxxx"
		case hasValue && slices.ContainsFunc(secretParams, func(w string) bool { return strings.Contains(lower, w) }):
			p = name + "=xxxxx"
		}
		b.WriteString(p)
		if end < len(query) {
			b.WriteByte(query[end])
			end++
		}
		query = query[end:]
	}
	return b.String()
}

// redactUserinfo returns a URL's user info with its password replaced by
// xxxxx, or all of it when it has no password: a user name alone is a
// token to NATS, a secret too.
func redactUserinfo(userinfo string) string {
	user, _, hasPassword := strings.Cut(userinfo, ":")
	if !hasPassword {
		return "xxxxx"
	}
	return user + ":xxxxx"
}

// checkStreamName checks a JetStream stream name as the server does: not
// empty, at most 255 bytes, no white space, no control characters, and none
// of . * > (subject syntax) or / \ (the name is a directory in the store).
func checkStreamName(key, name string) error {
	switch {
	case name == "":
		return invalid(key, `"" is empty: name the stream (e.g. "SSEHUB")`)
	case len(name) > maxStreamName:
		return invalid(key, fmt.Sprintf("%q is longer than %d bytes", name, maxStreamName))
	case strings.ContainsFunc(name, func(r rune) bool { return unicode.IsSpace(r) || unicode.IsControl(r) }),
		strings.ContainsAny(name, `.*>/\`):
		return invalid(key, fmt.Sprintf(`%q is not a JetStream stream name (no white space, control characters, ".", "*", ">", "/" or "\")`, name))
	}
	return nil
}

// checkSubjectPrefix checks that prefix is one or more dot-separated
// tokens of [A-Za-z0-9_-], like a topic without wildcards: the stream's
// subjects are <prefix>.>, and topic orders.eu is <prefix>.orders.eu.
// A prefix starting with $ would be a system subject ($JS, $SYS): the
// token rule rules it out.
func checkSubjectPrefix(key, prefix string) error {
	if prefix == "" {
		return invalid(key, `"" is empty: name a subject prefix (e.g. "ssehub")`)
	}
	if len(prefix) > maxSubjectPrefix {
		return invalid(key, fmt.Sprintf("%q is longer than %d bytes", prefix, maxSubjectPrefix))
	}
	for tok := range strings.SplitSeq(prefix, ".") {
		if tok == "" || strings.ContainsFunc(tok, func(r rune) bool { return !isTokenRune(r) }) {
			return invalid(key, fmt.Sprintf("%q is not a subject prefix: dot-separated tokens of letters, digits, _ and - (no wildcards, no empty token)", prefix))
		}
	}
	return nil
}

// isTokenRune reports whether r may appear in a subject prefix token.
func isTokenRune(r rune) bool {
	return r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '_' || r == '-'
}

// errTilde reports a path starting with ~: only a shell expands it, so
// ssehub would look for, or create, a directory named ~ in the working
// directory.
var errTilde = errors.New("starts with ~, which only a shell expands: write the full path")

// errCredsTooLong refuses a nats.credentials_file longer than
// MaxPEMFileBytes.
var errCredsTooLong = fmt.Errorf("longer than 1 MiB (%d bytes): a NATS .creds file, a user JWT and an NKey seed, "+
	"is some 1 KiB, and the NATS client reads it whole at every connection; is it the right file?", MaxPEMFileBytes)

// checkCredsFile checks that path names a regular file this process may
// open, of at most MaxPEMFileBytes: the NATS client reads it whole, at
// every connection and reconnection, and a file named by mistake (a log,
// a disk image) was read into memory each time. It looks before it
// opens: opening a FIFO waits for a writer, and the start hung on one
// without a word.
func checkCredsFile(ctx context.Context, path string) error {
	if strings.HasPrefix(path, "~") {
		return errTilde
	}
	if st, err := os.Stat(path); err == nil && !st.Mode().IsRegular() {
		return errNotRegular
	}
	// Opened without waiting, as ReadPEMFile opens: a FIFO swapped in
	// since the look is refused, and a wait for a lease on it ends
	// with ctx.
	f, err := openNonblock(ctx, path)
	if err != nil {
		return missingTarget(path, unwrapPath(err)) // the *PathError's path is already in the message
	}
	defer f.Close()
	st, err := f.Stat()
	switch {
	case err != nil:
		return err
	case !st.Mode().IsRegular():
		return errNotRegular
	case st.Size() > MaxPEMFileBytes:
		return errCredsTooLong
	}
	return nil
}

// checkCAFile checks that path is a regular file, of at most
// MaxPEMFileBytes (ReadPEMFile), holding at least one PEM certificate.
func checkCAFile(ctx context.Context, path string) error {
	pem, err := ReadPEMFileContext(ctx, path)
	if err != nil {
		return err
	}
	if !x509.NewCertPool().AppendCertsFromPEM(pem) {
		return errors.New("holds no PEM certificate")
	}
	return nil
}

// checkDir checks a directory ssehub creates if missing: not under ~,
// which would make a directory named ~.
func checkDir(key, dir string) error {
	if strings.HasPrefix(dir, "~") {
		return invalid(key, fmt.Sprintf("%q: %v", dir, errTilde))
	}
	return nil
}

// nonBlank checks that s holds something besides white space.
func nonBlank(key, s string) error {
	if strings.TrimSpace(s) == "" {
		return invalid(key, fmt.Sprintf("%q is empty", s))
	}
	return nil
}
