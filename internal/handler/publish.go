package handler

import (
	"bytes"
	"encoding/json"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"unicode/utf8"

	"github.com/gin-gonic/gin"
	"github.com/ssehub/ssehub/internal/stream"
)

// publishRequest is the body of POST /api/v1/topics/{topic}/events.
type publishRequest struct {
	Event string          `json:"event"`
	Data  json.RawMessage `json:"data"`
}

// Idempotency-Key is the request header of a publish's idempotency key,
// and Idempotent-Replayed the answer's header that marks a repeat that
// stored nothing (IETF draft "The Idempotency-Key HTTP Header Field"; the
// answer's name is Stripe's). Both are in their canonical form.
const (
	idempotencyKeyHeader = "Idempotency-Key"
	replayedHeader       = "Idempotent-Replayed"
)

// replayedTrue is the value of the Idempotent-Replayed header.
var replayedTrue = []string{"true"}

// publish serves POST /api/v1/topics/{topic}/events. It answers as soon as
// the broker has the event: it never waits for a subscriber. A repeat of
// an Idempotency-Key is answered with the first publish's id and topic,
// and Idempotent-Replayed: true.
func (h *Handler) publish(c *gin.Context) {
	// The topic comes first, as a subscription's patterns do: whether a
	// token is needed depends on it, and a topic that can be none is a
	// 400 whatever the token.
	topic := c.Param("topic")
	if err := stream.ValidateTopic(topic); err != nil {
		h.abortWithError(c, err)
		return
	}
	if err := h.checkPublishToken(c, topic); err != nil {
		h.abortWithError(c, err)
		return
	}
	key, err := idempotencyKey(c.Request.Header)
	if err != nil {
		h.abortWithError(c, err)
		return
	}
	eventType, data, err := readPublishRequest(c.Writer, c.Request, h.hub.MaxEventBytes)
	if err != nil {
		h.abortWithError(c, err)
		return
	}
	msg, replayed, err := h.hub.Broker.Publish(stream.Publication{Topic: topic, Type: eventType, Data: data, Key: key})
	if err != nil {
		h.abortWithError(c, err)
		return
	}
	if replayed {
		h.metrics.publishReplays.Inc()
		c.Writer.Header()[replayedHeader] = replayedTrue
	}
	writeJSON(c, http.StatusCreated, appendPublishAnswer(nil, msg.IDString(), msg.Topic))
}

// idempotencyKey returns the request's Idempotency-Key, "" without one,
// or the error that refuses it: invalid (stream.ValidateIdempotencyKey),
// or given more than once.
func idempotencyKey(header http.Header) (string, error) {
	values := header[idempotencyKeyHeader]
	switch len(values) {
	case 0:
		return "", nil
	case 1:
		return values[0], stream.ValidateIdempotencyKey(values[0])
	default:
		return "", fmt.Errorf("%w: given %d times: give it once", stream.ErrInvalidIdempotencyKey, len(values))
	}
}

// readPublishRequest decodes and checks a publish body, at most limit
// bytes of it. A JSON string in data is the event's data as it is; any
// other JSON value is sent as its compact text.
func readPublishRequest(w http.ResponseWriter, r *http.Request, limit int) (eventType, data string, err error) {
	var req publishRequest
	if err := decodeJSONBody(w, r, limit, &req, `{"event": "update", "data": {"n": 1}}`); err != nil {
		return "", "", err
	}
	if req.Event == "position" || req.Event == "reset" || req.Event == "expired" {
		return "", "", errReservedEventType
	}
	if req.Data == nil || string(req.Data) == "null" {
		return "", "", badRequest(`data is required and must not be null`)
	}
	if err := checkNumbers(req.Data); err != nil {
		return "", "", err
	}
	if data, err = eventData(req.Data); err != nil {
		// The decoder has checked the value: this is a bug, a 500.
		return "", "", fmt.Errorf("publish data %.40q: %w", req.Data, err)
	}
	return req.Event, data, nil
}

// checkNumbers refuses raw, a valid JSON value, when it holds a number
// past float64's range (1e400): JavaScript's JSON.parse reads it as
// Infinity and encoding/json refuses it, so no subscriber could read the
// event as it was published (RFC 8259 §6, I-JSON). One within the range,
// however many its digits, is left as it is.
func checkNumbers(raw json.RawMessage) error {
	for i := 0; i < len(raw); i++ {
		switch c := raw[i]; {
		case c == '"':
			for i++; i < len(raw) && raw[i] != '"'; i++ {
				if raw[i] == '\\' {
					i++
				}
			}
		case c == '-' || '0' <= c && c <= '9':
			j := i + 1
			for j < len(raw) && strings.IndexByte("+-.0123456789eE", raw[j]) >= 0 {
				j++
			}
			// Only an exponent, or more digits than float64's
			// largest has, can go past it.
			if num := raw[i:j]; len(num) > 308 || bytes.ContainsAny(num, "eE") {
				if _, err := strconv.ParseFloat(string(num), 64); err != nil {
					return badRequest("data: number %s is out of range: a JSON number must fit a 64-bit float", stream.Quote(string(num)))
				}
			}
			i = j - 1
		}
	}
	return nil
}

// eventData is the event data for raw, a valid JSON value: a string's
// text, any other value's compact text. Bytes that are not UTF-8 become
// U+FFFD in either, as encoding/json makes them in a string: the stream
// is UTF-8.
func eventData(raw json.RawMessage) (string, error) {
	if raw[0] == '"' {
		var s string
		err := json.Unmarshal(raw, &s)
		return s, err
	}
	if !utf8.Valid(raw) {
		raw = replaceInvalidUTF8(raw)
	}
	if !bytes.ContainsAny(raw, " \t\r\n") {
		return string(raw), nil // compact already
	}
	var b bytes.Buffer
	err := json.Compact(&b, raw)
	return b.String(), err
}

// replaceInvalidUTF8 returns b with each byte that is not part of a valid
// UTF-8 sequence replaced by U+FFFD, one for each such byte, as
// encoding/json replaces them when it decodes a string.
func replaceInvalidUTF8(b []byte) []byte {
	out := make([]byte, 0, len(b)+len(b)/2)
	for len(b) > 0 {
		r, size := utf8.DecodeRune(b)
		if r == utf8.RuneError && size == 1 {
			out = utf8.AppendRune(out, utf8.RuneError)
		} else {
			out = append(out, b[:size]...)
		}
		b = b[size:]
	}
	return out
}

// appendPublishAnswer appends the 201 answer, {"id":…,"topic":…}, the
// bytes json.Marshal writes for a map holding those two keys.
func appendPublishAnswer(dst []byte, id, topic string) []byte {
	dst = append(dst, `{"id":`...)
	dst = appendJSONString(dst, id)
	dst = append(dst, `,"topic":`...)
	dst = appendJSONString(dst, topic)
	return append(dst, '}')
}

// appendJSONString appends s as json.Marshal encodes a string. Ids (decimal
// digits) and topics ([A-Za-z0-9_.-]) need no escaping; a string that does
// takes json.Marshal's own path.
func appendJSONString(dst []byte, s string) []byte {
	for i := 0; i < len(s); i++ {
		switch c := s[i]; {
		case c < 0x20, c >= utf8.RuneSelf, c == '"', c == '\\', c == '<', c == '>', c == '&':
			b, _ := json.Marshal(s)
			return append(dst, b...)
		}
	}
	dst = append(dst, '"')
	dst = append(dst, s...)
	return append(dst, '"')
}

// jsonContentType is the Content-Type of every JSON answer, the one Gin's
// c.JSON sets.
var jsonContentType = []string{"application/json; charset=utf-8"}

// writeJSON answers status with body, already JSON, as c.JSON would answer
// with the value body encodes.
func writeJSON(c *gin.Context, status int, body []byte) {
	c.Status(status)
	if header := c.Writer.Header(); len(header["Content-Type"]) == 0 {
		header["Content-Type"] = jsonContentType
	}
	if _, err := c.Writer.Write(body); err != nil {
		_ = c.Error(err)
		c.Abort()
	}
}
