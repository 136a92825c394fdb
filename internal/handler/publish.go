package handler

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"mime"
	"net/http"

	"github.com/gin-gonic/gin"
	"github.com/ssehub/ssehub/internal/stream"
)

// publishRequest is the body of POST /api/v1/topics/{topic}/events.
type publishRequest struct {
	Event string          `json:"event"`
	Data  json.RawMessage `json:"data"`
}

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
	eventType, data, err := h.readPublishRequest(c.Writer, c.Request)
	if err != nil {
		h.abortWithError(c, err)
		return
	}
	msg, err := h.hub.Broker.Publish(topic, eventType, data)
	if err != nil {
		h.abortWithError(c, err)
		return
	}
	c.JSON(http.StatusCreated, gin.H{"id": msg.IDString(), "topic": msg.Topic})
}

func (h *Handler) checkPublishToken(c *gin.Context) error {
	if len(h.hub.PublishTokens) == 0 {
		return errPublishingOff
	}
	token := bearerToken(c)
	if token == "" {
		return errNoToken
	}
	if !tokenAllowed(token, h.hub.PublishTokens) {
		return errBadToken
	}
	return nil
}

// readPublishRequest decodes a publish body. A JSON string in data is the
// event's data as it is; any other JSON value is sent as its compact text.
func (h *Handler) readPublishRequest(w http.ResponseWriter, r *http.Request) (eventType, data string, err error) {
	mediaType, _, err := mime.ParseMediaType(r.Header.Get("Content-Type"))
	if err != nil || mediaType != "application/json" {
		return "", "", fmt.Errorf("%w: Content-Type %q, want application/json", errUnsupportedMediaType, r.Header.Get("Content-Type"))
	}
	dec := json.NewDecoder(http.MaxBytesReader(w, r.Body, int64(h.hub.MaxEventBytes)))
	dec.DisallowUnknownFields()
	var req publishRequest
	if err := dec.Decode(&req); err != nil {
		var tooLarge *http.MaxBytesError
		switch {
		case errors.As(err, &tooLarge):
			return "", "", err
		case errors.Is(err, io.EOF):
			return "", "", badRequest(`body: want a JSON object such as {"event": "update", "data": {"n": 1}}`)
		default:
			return "", "", badRequest("body: %v", err)
		}
	}
	if dec.More() {
		return "", "", badRequest("body: want one JSON object, found more after it")
	}
	if _, err := io.Copy(io.Discard, dec.Buffered()); err != nil {
		return "", "", badRequest("body: %v", err)
	}
	if req.Event == "reset" {
		return "", "", errReservedEventType
	}
	if req.Data == nil || string(req.Data) == "null" {
		return "", "", badRequest(`data is required and must not be null`)
	}
	if req.Data[0] == '"' {
		if err := json.Unmarshal(req.Data, &data); err != nil {
			return "", "", badRequest("data: %v", err)
		}
		return req.Event, data, nil
	}
	var compact bytes.Buffer
	if err := json.Compact(&compact, req.Data); err != nil {
		return "", "", badRequest("data: %v", err)
	}
	return req.Event, compact.String(), nil
}
