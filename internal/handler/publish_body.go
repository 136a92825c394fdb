package handler

import (
	"bytes"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"slices"
)

// publishRequest is the body of POST /api/v1/topics/{topic}/events.
type publishRequest struct {
	Event string          `json:"event"`
	Data  json.RawMessage `json:"data"`
}

// readBody appends the request body to dst, at most limit bytes of it. A
// longer body is cut at limit and ends in a *http.MaxBytesError, as
// http.MaxBytesReader reports it; a body that fails to arrive ends in the
// read error.
func readBody(dst []byte, r *http.Request, limit int) ([]byte, error) {
	if n := r.ContentLength; n > 0 && n <= int64(limit) {
		dst = slices.Grow(dst, int(n)+1) // +1: room to see the end
	}
	for {
		if len(dst) == cap(dst) {
			dst = slices.Grow(dst, 512)
		}
		n, err := r.Body.Read(dst[len(dst):min(cap(dst), limit+1)])
		dst = dst[:len(dst)+n]
		switch {
		case len(dst) > limit:
			return dst[:limit], &http.MaxBytesError{Limit: int64(limit)}
		case err == io.EOF:
			return dst, nil
		case err != nil:
			return dst, err
		}
	}
}

// parsePublishBody reads the usual body without encoding/json's reflection:
// one JSON object whose keys are "event" and "data", each at most once,
// spelled exactly so, with a JSON string for the event, and only white
// space after it. It returns the event type and the raw data value, which
// aliases body, or false for any other body: decodePublishBody then
// decides, with its errors. For the bodies it takes, it returns what
// decodePublishBody would.
func parsePublishBody(body []byte) (eventType string, data []byte, ok bool) {
	if !json.Valid(body) {
		return "", nil, false
	}
	i := skipJSONSpace(body, 0)
	if body[i] != '{' {
		return "", nil, false
	}
	var event []byte
	for i = skipJSONSpace(body, i+1); body[i] != '}'; {
		// body[i] starts a key: the input is valid JSON.
		keyEnd := jsonStringEnd(body, i)
		key := body[i+1 : keyEnd-1]
		i = skipJSONSpace(body, skipJSONSpace(body, keyEnd)+1) // past the colon
		end := jsonValueEnd(body, i)
		switch string(key) {
		case "event":
			if event != nil || body[i] != '"' {
				return "", nil, false
			}
			event = body[i:end]
		case "data":
			if data != nil {
				return "", nil, false
			}
			data = body[i:end]
		default:
			return "", nil, false
		}
		if i = skipJSONSpace(body, end); body[i] == ',' {
			i = skipJSONSpace(body, i+1)
		}
	}
	if event != nil {
		s, err := unquoteJSON(event)
		if err != nil {
			return "", nil, false
		}
		eventType = s
	}
	return eventType, data, true
}

// skipJSONSpace returns the index of the first byte at or after i that is
// not JSON white space.
func skipJSONSpace(b []byte, i int) int {
	for i < len(b) && (b[i] == ' ' || b[i] == '\t' || b[i] == '\n' || b[i] == '\r') {
		i++
	}
	return i
}

// jsonStringEnd returns the index just past the JSON string that starts at
// b[i], which must be valid.
func jsonStringEnd(b []byte, i int) int {
	for i++; i < len(b); i++ {
		switch b[i] {
		case '\\':
			i++
		case '"':
			return i + 1
		}
	}
	return len(b)
}

// jsonValueEnd returns the index just past the JSON value that starts at
// b[i], which must be valid and sit in an object or array.
func jsonValueEnd(b []byte, i int) int {
	depth := 0
	for ; i < len(b); i++ {
		switch b[i] {
		case '"':
			i = jsonStringEnd(b, i) - 1
		case '{', '[':
			depth++
		case '}', ']':
			if depth == 0 {
				return i
			}
			if depth--; depth == 0 {
				return i + 1
			}
		case ',', ' ', '\t', '\n', '\r':
			if depth == 0 {
				return i
			}
		}
	}
	return i
}

// decodePublishBody decodes any body with encoding/json: body as read,
// followed by readErr when the read ended in an error other than io.EOF
// (the body too large, or cut short). It sees the bytes and the error in
// the order a decoder reading the request would.
func decodePublishBody(body []byte, readErr error) (eventType string, data json.RawMessage, err error) {
	var src io.Reader = bytes.NewReader(body)
	if readErr != nil {
		src = io.MultiReader(src, errReader{readErr})
	}
	dec := json.NewDecoder(src)
	dec.DisallowUnknownFields()
	var req publishRequest
	if err := dec.Decode(&req); err != nil {
		var tooLarge *http.MaxBytesError
		switch {
		case errors.As(err, &tooLarge):
			return "", nil, err
		case errors.Is(err, io.EOF):
			return "", nil, badRequest(`body: want a JSON object such as {"event": "update", "data": {"n": 1}}`)
		default:
			return "", nil, badRequest("body: %s", describeJSONError(err))
		}
	}
	// Anything but white space after the object is refused, a stray "]"
	// or "}" too (Decoder.More would let those pass). Only the bytes that
	// were read are looked at: nothing past the limit or a failed read.
	if rest := body[min(dec.InputOffset(), int64(len(body))):]; skipJSONSpace(rest, 0) < len(rest) {
		return "", nil, badRequest("body: want one JSON object, found more after it")
	}
	return req.Event, req.Data, nil
}

// errReader fails every read with err.
type errReader struct{ err error }

func (r errReader) Read([]byte) (int, error) { return 0, r.err }
