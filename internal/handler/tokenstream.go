package handler

import (
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"time"

	"github.com/gin-gonic/gin"
	"github.com/ssehub/ssehub/internal/stream"
)

// Bounds of POST /stream.
const (
	maxTokenBody         = 64 << 10
	maxTokenInterval     = 5 * time.Second
	defaultTokenInterval = 50 * time.Millisecond
)

// doneFrame ends a token stream, the way chat completion APIs end theirs.
var doneFrame = mustEncode(stream.Event{Data: "[DONE]"})

// tokenRequest is the body of POST /stream.
type tokenRequest struct {
	Text string `json:"text"`
	// Interval is nil when the body leaves it out, which asks for the
	// default; an empty string is no duration, and is refused as the
	// ticker's empty interval= is.
	Interval *string `json:"interval"`
}

// token is the data of one token event.
type token struct {
	Index int    `json:"index"`
	Token string `json:"token"`
}

// tokenStream serves POST /stream: one event per word of the text,
// interval apart, then `data: [DONE]`. It is meant for fetch readers, which
// can POST a body where EventSource cannot.
func (h *Handler) tokenStream(c *gin.Context) {
	words, interval, err := h.readTokenRequest(c.Writer, c.Request)
	if err != nil {
		h.abortWithError(c, err)
		return
	}
	st, err := h.startStream()
	if err != nil {
		h.abortWithError(c, err)
		return
	}
	defer st.end()
	s := st.open(c)
	s.runPaced(paced{
		count:    len(words),
		interval: interval,
		appendItems: func(dst []byte, i, j int) []byte {
			for ; i < j; i++ {
				data, _ := json.Marshal(token{Index: i, Token: words[i]})
				dst, _ = (&stream.Event{Data: string(data)}).AppendTo(dst)
			}
			return dst
		},
		final: doneFrame,
	})
}

// readTokenRequest decodes and checks the body of POST /stream: at most
// demo.max_tokens words, lasting at most demo.max_duration.
func (h *Handler) readTokenRequest(w http.ResponseWriter, r *http.Request) (words []string, interval time.Duration, err error) {
	var req tokenRequest
	if err := decodeJSONBody(w, r, maxTokenBody, &req, `{"text": "hello world"}`); err != nil {
		return nil, 0, err
	}
	words = strings.Fields(req.Text)
	if len(words) == 0 {
		return nil, 0, badRequest("text is required and must hold at least one word")
	}
	if len(words) > h.demo.MaxTokens {
		return nil, 0, fmt.Errorf("%w: text has %d words; POST /stream takes at most %d (demo.max_tokens)",
			errTooManyTokens, len(words), h.demo.MaxTokens)
	}
	interval = defaultTokenInterval
	if req.Interval != nil {
		d, err := time.ParseDuration(*req.Interval)
		if err != nil || d < 0 || d > maxTokenInterval {
			return nil, 0, badRequest("interval %s: want a duration from 0s to %s, such as 50ms", stream.Quote(*req.Interval), maxTokenInterval)
		}
		interval = d
	}
	if err := h.checkDemoDuration("words", len(words), interval); err != nil {
		return nil, 0, err
	}
	return words, interval, nil
}
