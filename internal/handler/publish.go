package handler

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"mime"
	"net/http"
	"sync"
	"unicode/utf8"

	"github.com/gin-gonic/gin"
	"github.com/ssehub/ssehub/internal/stream"
)

// publish serves POST /api/v1/topics/{topic}/events. It answers as soon as
// the broker has the event: it never waits for a subscriber.
func (h *Handler) publish(c *gin.Context) {
	if err := h.checkPublishToken(c); err != nil {
		h.abortWithError(c, err)
		return
	}
	topic := c.Param("topic")
	if err := stream.ValidateTopic(topic); err != nil {
		h.abortWithError(c, err)
		return
	}
	scratch := getPublishScratch()
	defer putPublishScratch(scratch)
	eventType, data, err := h.readPublishRequest(c.Request, scratch)
	if err != nil {
		h.abortWithError(c, err)
		return
	}
	msg, err := h.hub.Broker.Publish(topic, eventType, data)
	if err != nil {
		h.abortWithError(c, err)
		return
	}
	scratch.body = appendPublishAnswer(scratch.body[:0], msg.IDString(), msg.Topic)
	writeJSON(c, http.StatusCreated, scratch.body)
}

// readPublishRequest reads and decodes a publish body, at most
// MaxEventBytes of it. A JSON string in data is the event's data as it is;
// any other JSON value is sent as its compact text. The strings returned
// do not share memory with scratch.
func (h *Handler) readPublishRequest(r *http.Request, scratch *publishScratch) (eventType, data string, err error) {
	if !isJSONContentType(r.Header.Get("Content-Type")) {
		return "", "", fmt.Errorf("%w: Content-Type %q, want application/json", errUnsupportedMediaType, r.Header.Get("Content-Type"))
	}
	body, readErr := readBody(scratch.body[:0], r, h.hub.MaxEventBytes)
	scratch.body = body
	var tooLarge *http.MaxBytesError
	if errors.As(readErr, &tooLarge) {
		// Whatever the first bytes hold: white space after a small
		// object is still over the cap.
		return "", "", readErr
	}
	var raw []byte
	ok := false
	if readErr == nil {
		eventType, raw, ok = parsePublishBody(body)
	}
	if !ok {
		if eventType, raw, err = decodePublishBody(body, readErr); err != nil {
			return "", "", err
		}
	}
	if eventType == "reset" {
		return "", "", errReservedEventType
	}
	if raw == nil || string(raw) == "null" {
		return "", "", badRequest(`data is required and must not be null`)
	}
	if raw[0] == '"' {
		if data, err = unquoteJSON(raw); err != nil {
			return "", "", badRequest("data: %s", describeJSONError(err))
		}
		return eventType, data, nil
	}
	if data, err = compactJSON(&scratch.compact, raw); err != nil {
		return "", "", badRequest("data: %s", describeJSONError(err))
	}
	return eventType, data, nil
}

// isJSONContentType reports whether a Content-Type names application/json,
// parameters allowed, as mime.ParseMediaType reads it. The usual spellings
// are matched first: ParseMediaType allocates a map for the parameters.
func isJSONContentType(contentType string) bool {
	switch contentType {
	case "application/json",
		"application/json; charset=utf-8", "application/json; charset=UTF-8",
		"application/json;charset=utf-8", "application/json;charset=UTF-8":
		return true
	}
	mediaType, _, err := mime.ParseMediaType(contentType)
	return err == nil && mediaType == "application/json"
}

// unquoteJSON decodes raw, a valid JSON string, as json.Unmarshal does. A
// string without escapes and in valid UTF-8 is its own text, copied.
func unquoteJSON(raw []byte) (string, error) {
	if len(raw) >= 2 {
		if s := raw[1 : len(raw)-1]; bytes.IndexByte(s, '\\') < 0 && utf8.Valid(s) {
			return string(s), nil
		}
	}
	var s string
	err := json.Unmarshal(raw, &s)
	return s, err
}

// compactJSON returns raw without insignificant white space, as
// json.Compact writes it, using buf as scratch. raw with no white-space
// byte at all is compact already.
func compactJSON(buf *bytes.Buffer, raw []byte) (string, error) {
	if !bytes.ContainsAny(raw, " \t\r\n") {
		return string(raw), nil
	}
	buf.Reset()
	if err := json.Compact(buf, raw); err != nil {
		return "", err
	}
	return buf.String(), nil
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

// publishScratch holds one publish request's buffers: the body, then the
// answer; the data when it needs compacting.
type publishScratch struct {
	body    []byte
	compact bytes.Buffer
}

// maxPooledScratch is the largest buffer put back in the pool: a rare big
// event should not keep its buffers alive.
const maxPooledScratch = 64 << 10

var publishScratchPool = sync.Pool{New: func() any { return new(publishScratch) }}

func getPublishScratch() *publishScratch {
	return publishScratchPool.Get().(*publishScratch)
}

func putPublishScratch(s *publishScratch) {
	if cap(s.body) > maxPooledScratch || s.compact.Cap() > maxPooledScratch {
		return
	}
	s.body = s.body[:0]
	s.compact.Reset()
	publishScratchPool.Put(s)
}
