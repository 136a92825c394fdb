package handler

import (
	"bytes"
	"cmp"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"mime"
	"net"
	"net/http"
	"os"
	"reflect"
	"strings"
	"sync"

	"github.com/gin-gonic/gin"
	"github.com/ssehub/ssehub/internal/stream"
)

// errBodyTimeout answers a body that did not arrive before the connection's
// read deadline (server.read_timeout).
var errBodyTimeout = fmt.Errorf("%w: the body did not arrive in time", errRequestTimeout)

// errBodyConnFailed answers a body whose connection failed while it was
// read: the client's reset, or the server's own close of the connection
// once server.shutdown_timeout has passed (Handler.Cutting), which
// abortWithError tells apart.
var errBodyConnFailed = fmt.Errorf("%w: body: the connection failed while it was read", errBadRequest)

// h2ConnClosed is the error of Go's HTTP/2 server for a request body
// whose connection ended, whichever side closed it: it has no error value
// of its own to match.
const h2ConnClosed = "client disconnected"

// decodeJSONBody decodes the body of r, one JSON object and nothing but
// white space after it, into dst: the one way this package reads a JSON
// request body, so every endpoint that takes one is as strict as the
// others. It refuses
//
//   - a Content-Type other than application/json, or one with a charset
//     other than utf-8 (checkJSONContentType): errUnsupportedMediaType;
//     application/json with parameters that do not parse, a list of
//     media types, an encoded charset* that does not decode: errBadRequest;
//     a Content-Type given twice, of which one would be read: errBadRequest;
//   - a Content-Encoding other than identity (checkContentEncoding):
//     errUnsupportedMediaType, with Accept-Encoding: identity set on w;
//   - a body longer than limit bytes, white space included: the
//     *http.MaxBytesError of http.MaxBytesReader; the same error, before a
//     byte is read, for a declared Content-Length over limit;
//   - a body that does not arrive before the connection's read deadline
//     (server.read_timeout): errRequestTimeout;
//   - a body whose framing is broken (a malformed chunk, or the
//     connection's end before the body's): errBadRequest, saying which;
//     one whose connection failed: errBodyConnFailed, naming no address;
//   - a body that starts with a byte order mark, an empty body, a body
//     that is not JSON or not an object, a field of the wrong type or
//     null, a field dst does not have (names are matched exactly, not as
//     encoding/json does, ignoring case), a field named twice, and
//     anything after the object: errBadRequest, saying what is wrong in
//     the client's terms (describeJSONError), where example shows a good
//     body.
//
// It may be called from any number of requests at once.
func decodeJSONBody(w http.ResponseWriter, r *http.Request, limit int, dst any, example string) error {
	contentType, _, err := oneValue("header", "Content-Type", r.Header.Values("Content-Type"))
	if err != nil {
		return err
	}
	if err := checkJSONContentType(contentType); err != nil {
		return err
	}
	if err := checkContentEncoding(r.Header.Values("Content-Encoding")); err != nil {
		// What the server takes instead (RFC 9110 §15.5.16).
		w.Header().Set("Accept-Encoding", "identity")
		return err
	}
	if r.ContentLength > int64(limit) {
		if r.ProtoMajor == 1 {
			refuseBody(w)
		}
		return &http.MaxBytesError{Limit: int64(limit)}
	}
	// Read whole first, to the end, so white space past the limit is
	// too large: the object is read twice (exactFieldNames).
	body, err := io.ReadAll(maxBytesReader(w, r.Body, limit))
	if err != nil {
		return bodyError(err, int64(len(body)), r.ContentLength)
	}
	if bytes.HasPrefix(body, utf8BOM) {
		// RFC 8259 §8.1: a JSON text has none; a parser may skip it,
		// encoding/json does not.
		return badRequest("body: it starts with a byte order mark (EF BB BF): send the JSON without it")
	}
	if err := exactFieldNames(body, dst); err != nil {
		return err
	}
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.DisallowUnknownFields()
	if err := dec.Decode(dst); err != nil {
		if errors.Is(err, io.EOF) {
			return badRequest("body: want a JSON object such as %s", example)
		}
		return badRequest("body: %s", describeJSONError(err))
	}
	// A second value must not be there: only io.EOF will do. A stray "]"
	// or "}", which Decoder.More lets pass, is refused too.
	if err := dec.Decode(new(json.RawMessage)); !errors.Is(err, io.EOF) {
		return badRequest("body: want one JSON object, found more after it")
	}
	return nil
}

// utf8BOM is U+FEFF in UTF-8, the byte order mark some editors put first.
var utf8BOM = []byte("\ufeff")

// h2ShortBody begins the error of Go's HTTP/2 server for a request body
// that ended (END_STREAM) before its content-length: it has no error
// value of its own to match.
const h2ShortBody = "request declared a Content-Length of "

// chunkLineTooLong is the error of net/http's chunked reader for a chunk
// line (a chunk's size and its extensions) longer than maxChunkLine: its
// text speaks of a header line, which the request's head is not; it has
// no error value that can be matched from outside net/http.
const (
	chunkLineTooLong = "header line too long"
	maxChunkLine     = 4096
)

// bodyError says what err, which reading a request's body of
// contentLength (-1 for unknown) ended in after n bytes, means, as
// decodeJSONBody lists: the cap's *http.MaxBytesError as it is,
// errBodyTimeout, or errBadRequest saying how its framing broke, or that
// its connection failed.
func bodyError(err error, n, contentLength int64) error {
	switch {
	case isTooLarge(err):
		return err
	case errors.Is(err, os.ErrDeadlineExceeded):
		return errBodyTimeout
	case errors.Is(err, io.ErrUnexpectedEOF) && contentLength >= 0,
		contentLength >= 0 && strings.HasPrefix(err.Error(), h2ShortBody):
		// The client closed its side, or ended its HTTP/2 stream: its
		// JSON may be whole.
		return badRequest("body: it ended after %d of its %d bytes (Content-Length)", n, contentLength)
	case errors.Is(err, io.ErrUnexpectedEOF):
		// In a chunk or between two: net/http's reader does not say.
		return badRequest("body: it ended before its last chunk (the chunk of size 0)")
	case errors.As(err, new(*net.OpError)), err.Error() == h2ConnClosed:
		// Reset, say: its text names the server's address and the
		// peer's, which no answer may carry.
		return errBodyConnFailed
	case err.Error() == chunkLineTooLong:
		return badRequest("body: a chunk line (its size and extensions) is longer than %d bytes", maxChunkLine)
	default: // its chunked framing is broken
		return badRequest("body: %s", stream.Quote(err.Error()))
	}
}

// exactFieldNames refuses an object that names a field of dst (a pointer
// to a struct) in another case, "Data" for "data", which encoding/json
// takes as that field, or that names one field twice, of which
// encoding/json keeps the last: a proxy or filter in front of the hub
// that reads only exact names, or the first of two, would see another
// event than the one stored. It refuses a field of dst that is null too,
// which encoding/json reads as no field, so its default: "interval": null
// was a 50 ms stream, "event": null a message, where "data": null is
// refused, and a number where a string belongs is too. Anything else that is wrong (not an object,
// not JSON, an unknown field) it leaves to the decoder, which says what.
//
// It reads the object's top level only, skipping each value, without
// allocating: encoding/json has no way to ask this (its Decoder.Token
// took 33 allocations and 6 µs for a small event, a sixth of a publish).
func exactFieldNames(body []byte, dst any) error {
	names := fieldNamesOf(reflect.TypeOf(dst).Elem())
	var seen uint64 // bit i: names[i] was there; structs here have few fields
	r := topLevel{b: body}
	if !r.next('{') {
		return nil
	}
	if r.next('}') {
		return nil
	}
	for {
		raw, ok := r.key()
		if !ok {
			return nil
		}
		key := raw
		if bytes.IndexByte(raw, '\\') >= 0 { // rare: an escape in a name
			var unquoted string
			if err := json.Unmarshal(append(append([]byte{'"'}, raw...), '"'), &unquoted); err != nil {
				return nil
			}
			key = []byte(unquoted)
		}
		i := fieldIndex(names, key, false)
		switch {
		case i < 0:
			if j := fieldIndex(names, key, true); j >= 0 {
				return badRequest("body: unknown field %s: field names are case-sensitive, want %q", stream.Quote(string(key)), names[j])
			}
			return nil
		case i < 64 && seen&(1<<i) != 0:
			return badRequest("body: field %q is there twice", key)
		case i < 64:
			seen |= 1 << i
		}
		if !r.next(':') {
			return nil
		}
		if r.null() {
			return badRequest("body: field %q must not be null", key)
		}
		if !r.skipValue() {
			return nil
		}
		if !r.next(',') {
			return nil // '}' or not JSON: the decoder has the last word
		}
	}
}

// fieldIndex returns the index of key among names, matched exactly, or
// with fold ignoring case as encoding/json does; -1 for none.
func fieldIndex(names []string, key []byte, fold bool) int {
	for i, n := range names {
		if n == string(key) || fold && strings.EqualFold(n, string(key)) {
			return i
		}
	}
	return -1
}

// topLevel reads the top level of a JSON object, for exactFieldNames: it
// checks no more of the syntax than it needs to find the names.
type topLevel struct {
	b []byte
	i int
}

// next skips white space and then c, reporting whether c was there.
func (r *topLevel) next(c byte) bool {
	r.skipSpace()
	if r.i < len(r.b) && r.b[r.i] == c {
		r.i++
		return true
	}
	return false
}

// skipSpace skips white space.
func (r *topLevel) skipSpace() {
	for r.i < len(r.b) && (r.b[r.i] == ' ' || r.b[r.i] == '\t' || r.b[r.i] == '\n' || r.b[r.i] == '\r') {
		r.i++
	}
}

// null reports whether the value that follows, past white space, is the
// literal null; it reads the white space only.
func (r *topLevel) null() bool {
	r.skipSpace()
	rest := r.b[r.i:]
	if !bytes.HasPrefix(rest, []byte("null")) {
		return false
	}
	rest = rest[len("null"):]
	return len(rest) == 0 || strings.IndexByte(" \t\r\n,}", rest[0]) >= 0
}

// key reads a string, returning what is between its quotes, escapes
// left as they are.
func (r *topLevel) key() ([]byte, bool) {
	if !r.next('"') {
		return nil, false
	}
	start := r.i
	if !r.skipString() {
		return nil, false
	}
	return r.b[start : r.i-1], true
}

// skipString moves past the rest of a string whose opening quote was read.
func (r *topLevel) skipString() bool {
	for r.i < len(r.b) {
		switch r.b[r.i] {
		case '\\':
			r.i += 2
		case '"':
			r.i++
			return true
		default:
			r.i++
		}
	}
	return false
}

// skipValue moves past one value: up to the ',' or '}' that ends it at the
// top level, which it leaves to be read.
func (r *topLevel) skipValue() bool {
	depth := 0
	for r.i < len(r.b) {
		switch r.b[r.i] {
		case '"':
			r.i++
			if !r.skipString() {
				return false
			}
			continue
		case '{', '[':
			depth++
		case '}', ']':
			if depth == 0 {
				return true
			}
			depth--
		case ',':
			if depth == 0 {
				return true
			}
		}
		r.i++
	}
	return false
}

// fieldNames caches fieldNamesOf: reflect.Type to []string.
var fieldNames sync.Map

// fieldNamesOf lists the names encoding/json gives the fields of struct
// type t: each one's json tag name, or its Go name.
func fieldNamesOf(t reflect.Type) []string {
	if names, ok := fieldNames.Load(t); ok {
		return names.([]string)
	}
	names := make([]string, 0, t.NumField())
	for f := range t.Fields() {
		name, _, _ := strings.Cut(f.Tag.Get("json"), ",")
		if name == "-" || !f.IsExported() {
			continue
		}
		names = append(names, cmp.Or(name, f.Name))
	}
	fieldNames.Store(t, names)
	return names
}

// refuseBody makes the answer to an HTTP/1.x request close its connection,
// so that it goes out before any of the body is read: otherwise net/http
// reads up to 256 KiB of the body first, to keep the connection for the
// next request, and a client that never sends it waits for the read
// timeout. After the answer, net/http still drains what comes of the body
// (as much, and within server.read_timeout) before it closes: closing on
// unread bytes would reset the connection, and the client could lose the
// answer. On HTTP/2 the header would end the whole connection, and a
// stream's body is not in the way: it is not set there.
func refuseBody(w http.ResponseWriter) {
	w.Header().Set("Connection", "close")
}

// maxDiscardedBody is how much of a body the request of a GET stream may
// send: it means nothing there, and is read and dropped.
const maxDiscardedBody = 64 << 10

// discardBody reads and drops the body of a GET stream's request while
// the connection's read deadline (server.read_timeout) still holds. A
// stream lifts that deadline once it starts, and net/http reads a body the
// handler left unread before it writes the response's headers: a body
// announced and never sent held the stream's first write, and with it its
// heartbeats, its write timeout and its check for a gone client, for good.
// A body that does not arrive in time is 408, one over maxDiscardedBody
// 413, one whose framing is broken 400 saying how, as for a JSON body
// (bodyError).
func (h *Handler) discardBody(c *gin.Context) {
	r := c.Request
	if r.Body == nil || r.Body == http.NoBody {
		return
	}
	if r.ContentLength > maxDiscardedBody {
		if r.ProtoMajor == 1 {
			refuseBody(c.Writer)
		}
		h.abortWithError(c, &http.MaxBytesError{Limit: maxDiscardedBody})
		return
	}
	n, err := io.Copy(io.Discard, maxBytesReader(c.Writer, r.Body, maxDiscardedBody))
	if err != nil {
		h.abortWithError(c, bodyError(err, n, r.ContentLength))
	}
}

// maxBytesReader is http.MaxBytesReader over the writer at the bottom of
// w's Unwrap chain: net/http's own, which MaxBytesReader tells when the
// body goes past limit, so that the answer goes out at once and closes the
// connection. Told through Gin's writer, which cannot pass it on, net/http
// went on reading the body, up to 256 KiB more, before it answered: a
// chunked body over the cap whose client waited for the answer had none
// until server.read_timeout.
func maxBytesReader(w http.ResponseWriter, body io.ReadCloser, limit int) io.ReadCloser {
	for {
		u, ok := w.(interface{ Unwrap() http.ResponseWriter })
		if !ok {
			return http.MaxBytesReader(w, body, int64(limit))
		}
		w = u.Unwrap()
	}
}

// isTooLarge reports whether err says a body went past its limit.
func isTooLarge(err error) bool {
	var tooLarge *http.MaxBytesError
	return errors.As(err, &tooLarge)
}

// checkJSONContentType returns nil when contentType names
// application/json, as mime.ParseMediaType reads it, with no charset or a
// charset read as UTF-8 (utf8Charset), else an errUnsupportedMediaType
// that says which; application/json with parameters that do not parse
// (mime.ParseMediaType's error: "; foo", a parameter twice with different
// values) is an errBadRequest saying so, and so is a list of media types
// ("application/json, text/plain") and an RFC 2231 encoded charset* that
// does not decode (extendedCharset). The usual spellings are matched
// first: ParseMediaType allocates a map for the parameters.
//
// A JSON body is UTF-8 (RFC 8259 §8.1), and encoding/json reads it as
// UTF-8 whatever the header says: a publish declared charset=iso-8859-1
// was answered 201 and stored with each of its bytes that is not UTF-8
// turned into U+FFFD. So another charset is refused, not mangled; its
// value is compared without regard to case, quoted or not (RFC 9110
// §8.3.1). utf8, a common misspelling, and us-ascii, which UTF-8 extends,
// read the same: clients that send them were answered 201 before charsets
// were checked, and still are. Other parameters are accepted and ignored: application/json
// defines none (RFC 8259 §11), so none can change how the body is read,
// and refusing one would refuse a body that reads the same either way.
func checkJSONContentType(contentType string) error {
	switch contentType {
	case "application/json",
		"application/json; charset=utf-8", "application/json; charset=UTF-8",
		"application/json;charset=utf-8", "application/json;charset=UTF-8":
		return nil
	}
	mediaType, params, err := mime.ParseMediaType(contentType)
	if err != nil && len(splitOutsideQuotes(contentType, ',')) > 1 {
		// Content-Type is one media type (RFC 9110 §8.3), not a list:
		// "want application/json" did not say what was wrong with
		// "application/json, text/plain".
		return badRequest("Content-Type %s is a list (a comma outside a quoted string): "+
			"a single media type is expected, application/json", stream.Quote(contentType))
	}
	if err != nil && jsonMediaType(contentType) {
		// The type is right, its parameters do not parse: a malformed
		// header, not an unsupported type, and "want application/json"
		// would send the client to the type it sent. mime's own error
		// text is not quoted.
		if errors.Is(err, mime.ErrInvalidMediaParameter) {
			return badRequest("Content-Type %s: a parameter is not name=value "+
				"(a token, or a quoted string): send application/json, or application/json; charset=utf-8",
				stream.Quote(contentType))
		}
		return badRequest("Content-Type %s: a parameter is given twice, with different values", stream.Quote(contentType))
	}
	if err != nil || mediaType != "application/json" {
		return fmt.Errorf("%w: Content-Type %s, want application/json", errUnsupportedMediaType, stream.Quote(contentType))
	}
	if ext := extendedCharset(contentType); ext != nil {
		// RFC 2231's charset*: mime.ParseMediaType drops one whose value
		// it cannot decode, and the body was read as UTF-8 whatever the
		// client meant by it. One that decodes stands for the charset,
		// ahead of a plain charset= beside it (RFC 2231 §4).
		_, p, err := mime.ParseMediaType("application/json; " + strings.Join(ext, "; "))
		charset, ok := p["charset"]
		if err != nil || !ok {
			return badRequest("Content-Type %s: the charset parameter cannot be read: an encoded charset* is "+
				"utf-8''value or us-ascii''value, its bytes %%-escaped (RFC 2231): "+
				"send application/json, or application/json; charset=utf-8", stream.Quote(contentType))
		}
		params["charset"] = charset
	}
	if charset, ok := params["charset"]; ok && !utf8Charset(charset) {
		return fmt.Errorf("%w: Content-Type %s: charset %s, want utf-8 (a JSON body is UTF-8) or none",
			errUnsupportedMediaType, stream.Quote(contentType), stream.Quote(charset))
	}
	return nil
}

// jsonMediaType reports whether the media type of contentType, before its
// parameters, is application/json as mime.ParseMediaType reads it: in any
// ASCII case, with white space around it.
func jsonMediaType(contentType string) bool {
	base, _, _ := strings.Cut(contentType, ";")
	return strings.ToLower(strings.TrimSpace(base)) == "application/json"
}

// splitOutsideQuotes splits s at each sep outside a quoted string (RFC
// 9110 §5.6.4, with its backslash escapes).
func splitOutsideQuotes(s string, sep byte) []string {
	var parts []string
	quoted, start := false, 0
	for i := 0; i < len(s); i++ {
		switch {
		case quoted && s[i] == '\\':
			i++
		case s[i] == '"':
			quoted = !quoted
		case !quoted && s[i] == sep:
			parts = append(parts, s[start:i])
			start = i + 1
		}
	}
	return append(parts, s[start:])
}

// extendedCharset returns the parameters of contentType, a media type
// that mime.ParseMediaType reads, that give its charset in RFC 2231's
// extended form (charset*, or the pieces charset*0, charset*1*, ...), as
// they were written; nil when there are none.
func extendedCharset(contentType string) []string {
	var found []string
	for _, param := range splitOutsideQuotes(contentType, ';')[1:] {
		param = strings.TrimSpace(param)
		name, _, _ := strings.Cut(param, "=")
		if strings.HasPrefix(strings.ToLower(strings.TrimSpace(name)), "charset*") {
			found = append(found, param)
		}
	}
	return found
}

// utf8Charset reports whether a body of that charset reads as UTF-8.
func utf8Charset(charset string) bool {
	return strings.EqualFold(charset, "utf-8") || strings.EqualFold(charset, "utf8") || strings.EqualFold(charset, "us-ascii")
}

// checkContentEncoding returns nil when the Content-Encoding header's
// values (a comma-separated list, in one header or several) name no
// coding but identity, else an errUnsupportedMediaType that names the
// first other one. The body is read as it comes: a gzip body was refused
// as "not valid JSON", which sent its client looking for the wrong fault,
// and a body declared br but sent plain was stored, though a proxy or
// client that honours the header reads another one.
func checkContentEncoding(values []string) error {
	for _, v := range values {
		for coding := range strings.SplitSeq(v, ",") {
			coding = strings.TrimSpace(coding)
			if coding != "" && !strings.EqualFold(coding, "identity") {
				return fmt.Errorf("%w: Content-Encoding %s: not supported, send the body unencoded (identity)",
					errUnsupportedMediaType, stream.Quote(coding))
			}
		}
	}
	return nil
}
