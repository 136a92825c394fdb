package handler

import (
	"io"
	"log/slog"
	"strings"
	"testing"

	"github.com/gin-gonic/gin"
	"github.com/ssehub/ssehub/internal/testlog"
)

// panicsInHandler and panicsInStream panic under names the stack in the
// log line can be searched for.
func panicsInHandler(*gin.Context) { panic("boom") }

func panicsInStream(*sseStream, io.Writer) bool { panic("boom") }

// TestPanicLineSaysWhere: the error line of a panic, in a handler or in a
// stream, whatever the transport, carries the stack where it was raised:
// it said only the panic's value ("boom", "index out of range"), Gin's
// recovery, which prints the stack, writing to nowhere, and a panic
// raised again after its cleanup showing only where it was raised again.
func TestPanicLineSaysWhere(t *testing.T) {
	var logs testlog.Buffer
	opts := testOptions()
	opts.Logger = slog.New(slog.NewTextHandler(&logs, nil))
	ts := newTestServer(t, opts)
	ts.h.engine.GET("/boom", panicsInHandler)
	routePanics(ts.h, panicsInStream, func() {})
	for path, fn := range map[string]string{"/boom": "panicsInHandler", "/panics": "panicsInStream"} {
		resp := ts.do(t, "GET", path, nil, nil)
		resp.Body.Close()
		var line string
		waitFor(t, func() bool {
			line = grepLines(grepLines(logs.String(), "panicked\" "), " path="+path+" ")
			return line != ""
		})
		if !strings.Contains(line, "level=ERROR") || !strings.Contains(line, " stack=") || !strings.Contains(line, "handler."+fn+"(") {
			t.Errorf("GET %s: panic line %.2000q, want an error with the stack through %s", path, line, fn)
		}
	}
}
