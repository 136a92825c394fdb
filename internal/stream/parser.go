package stream

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"math"
	"time"
)

// Errors returned by Parser.Next when the stream exceeds a limit.
var (
	// ErrLineTooLong reports a line longer than Parser.MaxLineBytes.
	ErrLineTooLong = errors.New("line too long")
	// ErrEventTooLong reports an event whose data is longer than
	// Parser.MaxEventBytes.
	ErrEventTooLong = errors.New("event data too long")
)

// Parser limits used when the fields are zero.
const (
	defaultMaxLineBytes  = 1 << 20
	defaultMaxEventBytes = 16 << 20
	initialBufferSize    = 4096
	maxEmptyReads        = 100
)

// maxRetryMillis is the largest retry, in milliseconds, that a
// time.Duration holds; larger values are clamped to it.
const maxRetryMillis = math.MaxInt64 / int64(time.Millisecond)

// utf8BOM is the byte order mark a stream may start with.
var utf8BOM = []byte{0xEF, 0xBB, 0xBF}

// Parser reads Server-Sent Events from a byte stream following the WHATWG
// HTML rules for interpreting an event stream: one UTF-8 byte order mark is
// dropped at the start; lines end with CRLF, a lone CR or a lone LF (also
// when CR and LF arrive in different reads); a line starting with a colon
// is a comment; "name:value" loses one space after the colon; a line
// without a colon is a field name with an empty value; `event`, `data`,
// `id` (ignored when it holds NUL) and `retry` (ignored unless ASCII digits
// only) are the fields, others are ignored; a blank line dispatches the
// event unless its data is empty; an incomplete frame at the end of input
// is dropped. Bytes are passed through as they are: invalid UTF-8 is not
// replaced with U+FFFD as a browser would.
//
// The parser reads through its own buffer, which starts at 4 KiB and grows
// up to MaxLineBytes when a line needs it, and reuses it and the field
// buffers, so parsing allocates only the strings of each returned Event.
//
// Set the exported fields before the first call to Next. A Parser is not
// safe for concurrent use.
type Parser struct {
	// OnComment, when set, is called by Next for each comment line with
	// the text after the colon, one leading space removed (the same text
	// that goes into Event.Comment).
	OnComment func(text string)
	// MaxLineBytes bounds the length of one line, line end excluded; a
	// longer line makes Next return ErrLineTooLong. Zero means 1 MiB.
	MaxLineBytes int
	// MaxEventBytes bounds the data of one event; more makes Next return
	// ErrEventTooLong. It also caps the comment text kept for
	// Event.Comment: comment lines past it are left out (OnComment still
	// sees them). Zero means 16 MiB.
	MaxEventBytes int

	r       io.Reader
	buf     []byte // buf[start:end] is read but not yet parsed
	start   int
	end     int
	scanned int   // buf[start:start+scanned] holds no CR or LF
	lfEnd   int   // one past the next LF found in buf, when above start
	lfFrom  int   // where the search for the next LF goes on: buf[start:lfFrom] has none
	readErr error // the error of the last Read, reported once the buffer is parsed
	err     error // sticky error returned by Next

	bomDone bool // the start of the stream has been checked for a BOM
	skipLF  bool // the last line ended with CR: a following LF belongs to it

	data         []byte // data buffer
	typ          []byte // event type buffer
	idBuf        []byte // last event ID buffer
	comment      []byte // comment lines since the last dispatch, joined with LF
	commentLines int    // number of lines in comment
	lastID       string // last event ID string, set from idBuf at each blank line
	lastType     string // the previous event type, reused to avoid allocating
	retry        time.Duration
	reconn       time.Duration
}

// NewParser returns a Parser reading from r.
func NewParser(r io.Reader) *Parser {
	return &Parser{r: r}
}

// Next reads until the next event is dispatched and returns it.
//
// ID is the last event ID buffer, which persists across events as in the
// spec; Type is the event type buffer, empty when the frame gave none
// (callers treat it as "message"); Data is the data buffer minus its final
// LF; Retry is the last valid retry field seen since the previous dispatch
// (0 if none); Comment holds the comment lines seen since the previous
// dispatch joined with LF, each with one leading space removed.
//
// At the end of input Next returns io.EOF, dropping an incomplete trailing
// frame. A read error is returned as it is. ErrLineTooLong and
// ErrEventTooLong are returned wrapped. Once Next has returned an error it
// returns the same error on every later call.
func (p *Parser) Next() (Event, error) {
	if p.err != nil {
		return Event{}, p.err
	}
	for {
		line, err := p.readLine()
		if err != nil {
			p.err = err
			return Event{}, err
		}
		ev, ok, err := p.processLine(line)
		if err != nil {
			p.err = err
			return Event{}, err
		}
		if ok {
			return ev, nil
		}
	}
}

// LastEventID returns the last event ID string: the id buffer as it was at
// the last blank line, whether or not that line dispatched an event. It is
// the value to send as Last-Event-ID when reconnecting.
func (p *Parser) LastEventID() string {
	return p.lastID
}

// ReconnectionTime returns the last valid retry field seen, 0 if none.
func (p *Parser) ReconnectionTime() time.Duration {
	return p.reconn
}

// processLine interprets one line, without its line end. It returns the
// event and true when the line dispatched one.
func (p *Parser) processLine(line []byte) (Event, bool, error) {
	if len(line) == 0 {
		ev, ok := p.dispatch()
		return ev, ok, nil
	}
	if line[0] == ':' {
		p.addComment(trimSpace(line[1:]))
		return Event{}, false, nil
	}
	name, value := line, []byte(nil)
	if i := bytes.IndexByte(line, ':'); i >= 0 {
		name, value = line[:i], trimSpace(line[i+1:])
	}
	switch string(name) {
	case "event":
		p.typ = append(p.typ[:0], value...)
	case "data":
		// The event's data is the buffer without its final LF: with this
		// line, the buffer's bytes and value's.
		if len(p.data)+len(value) > p.maxEventBytes() {
			return Event{}, false, fmt.Errorf("more than %d bytes: %w", p.maxEventBytes(), ErrEventTooLong)
		}
		p.data = append(p.data, value...)
		p.data = append(p.data, '\n')
	case "id":
		if bytes.IndexByte(value, 0) < 0 {
			p.idBuf = append(p.idBuf[:0], value...)
		}
	case "retry":
		if d, ok := parseRetry(value); ok {
			p.retry, p.reconn = d, d
		}
	}
	return Event{}, false, nil
}

// dispatch runs the spec's dispatch steps at a blank line.
func (p *Parser) dispatch() (Event, bool) {
	if string(p.idBuf) != p.lastID {
		p.lastID = string(p.idBuf)
	}
	if len(p.data) == 0 {
		p.typ = p.typ[:0]
		return Event{}, false
	}
	if string(p.typ) != p.lastType {
		p.lastType = string(p.typ)
	}
	ev := Event{
		ID:      p.lastID,
		Type:    p.lastType,
		Data:    string(p.data[:len(p.data)-1]),
		Retry:   p.retry,
		Comment: string(p.comment),
	}
	p.data, p.typ, p.comment = p.data[:0], p.typ[:0], p.comment[:0]
	p.commentLines, p.retry = 0, 0
	return ev, true
}

// addComment records one comment line.
func (p *Parser) addComment(text []byte) {
	if p.OnComment != nil {
		p.OnComment(string(text))
	}
	sep := min(p.commentLines, 1) // the LF joining it to the lines before
	if len(p.comment)+sep+len(text) > p.maxEventBytes() {
		return
	}
	if sep > 0 {
		p.comment = append(p.comment, '\n')
	}
	p.comment = append(p.comment, text...)
	p.commentLines++
}

// readLine returns the next complete line without its line end. The slice
// is valid until the next call.
func (p *Parser) readLine() ([]byte, error) {
	for {
		if p.bomDone {
			if line, ok, err := p.scanLine(); ok || err != nil {
				return line, err
			}
		} else {
			p.checkBOM()
			if p.bomDone {
				continue
			}
		}
		if p.readErr != nil {
			return nil, p.readErr
		}
		if err := p.fill(); err != nil {
			return nil, err
		}
	}
}

// checkBOM drops a byte order mark at the start of the stream once enough
// bytes are buffered to tell whether there is one.
func (p *Parser) checkBOM() {
	b := p.buf[p.start:p.end]
	switch {
	case len(b) >= len(utf8BOM):
		if bytes.HasPrefix(b, utf8BOM) {
			p.start += len(utf8BOM)
		}
	case bytes.HasPrefix(utf8BOM, b) && p.readErr == nil:
		return // too few bytes to tell yet
	}
	p.bomDone = true
}

// scanLine looks for a complete line in the buffer. It returns false when
// more input is needed.
func (p *Parser) scanLine() ([]byte, bool, error) {
	if p.skipLF && p.start < p.end {
		p.skipLF = false
		if p.buf[p.start] == '\n' {
			p.start++
		}
	}
	b := p.buf[p.start:p.end]
	rest := b[p.scanned:]
	i := p.nextLF() - p.start - p.scanned
	if i >= 0 {
		rest = rest[:i]
	}
	if j := bytes.IndexByte(rest, '\r'); j >= 0 {
		i = j
		p.skipLF = true
	}
	limit := p.maxLineBytes()
	if i < 0 {
		p.scanned = len(b)
		if len(b) > limit {
			return nil, false, fmt.Errorf("more than %d bytes: %w", limit, ErrLineTooLong)
		}
		return nil, false, nil
	}
	n := p.scanned + i
	p.start += n + 1
	p.scanned = 0
	if n > limit {
		return nil, false, fmt.Errorf("more than %d bytes: %w", limit, ErrLineTooLong)
	}
	return b[:n], true, nil
}

// nextLF returns the index in buf of the first LF of buf[start:end], or
// a negative number when there is none. The LF found is kept while lines
// before it end with CR, and what was searched is not searched again when
// more input arrives: searching the buffered input again for each line
// made lines that end with CR cost time quadratic in the buffer's size
// (up to MaxLineBytes once a long line has grown it).
func (p *Parser) nextLF() int {
	if p.lfEnd > p.start {
		return p.lfEnd - 1
	}
	from := max(p.lfFrom, p.start)
	if k := bytes.IndexByte(p.buf[from:p.end], '\n'); k >= 0 {
		p.lfEnd = from + k + 1
		return from + k
	}
	p.lfFrom = p.end
	return -1
}

// moved records that the buffered bytes moved n places to the front.
func (p *Parser) moved(n int) {
	p.lfEnd = max(p.lfEnd-n, 0)
	p.lfFrom = max(p.lfFrom-n, 0)
}

// fill reads more input into the buffer, first making room by moving the
// unparsed bytes to the front or by growing the buffer up to one byte more
// than the longest line allowed. Read errors are kept in p.readErr and
// reported once the buffered bytes are parsed.
func (p *Parser) fill() error {
	if p.start == p.end {
		p.moved(p.start)
		p.start, p.end = 0, 0
	}
	if p.end == len(p.buf) {
		if p.start > 0 {
			p.moved(p.start)
			p.end = copy(p.buf, p.buf[p.start:p.end])
			p.start = 0
		} else {
			size := max(2*len(p.buf), initialBufferSize)
			size = min(size, p.maxLineBytes()+1)
			size = max(size, len(p.buf)+1, len(utf8BOM))
			buf := make([]byte, size)
			p.end = copy(buf, p.buf[p.start:p.end])
			p.buf = buf
		}
	}
	for range maxEmptyReads {
		n, err := p.r.Read(p.buf[p.end:])
		if n < 0 || n > len(p.buf)-p.end {
			return fmt.Errorf("stream: reader returned invalid count %d", n)
		}
		p.end += n
		if err != nil {
			p.readErr = err
			return nil
		}
		if n > 0 {
			return nil
		}
	}
	return io.ErrNoProgress
}

func (p *Parser) maxLineBytes() int {
	if p.MaxLineBytes > 0 {
		return p.MaxLineBytes
	}
	return defaultMaxLineBytes
}

func (p *Parser) maxEventBytes() int {
	if p.MaxEventBytes > 0 {
		return p.MaxEventBytes
	}
	return defaultMaxEventBytes
}

// trimSpace removes one leading space, as the spec does for field values
// and as Parser does for comments.
func trimSpace(b []byte) []byte {
	if len(b) > 0 && b[0] == ' ' {
		return b[1:]
	}
	return b
}

// parseRetry interprets a retry value: ASCII digits only, at least one,
// in milliseconds. Values too large for a time.Duration are clamped to the
// largest whole number of milliseconds it holds.
func parseRetry(value []byte) (time.Duration, bool) {
	if len(value) == 0 {
		return 0, false
	}
	var ms int64
	for _, c := range value {
		if c < '0' || c > '9' {
			return 0, false
		}
		if ms <= maxRetryMillis {
			ms = ms*10 + int64(c-'0')
		}
	}
	ms = min(ms, maxRetryMillis)
	return time.Duration(ms) * time.Millisecond, true
}
