package handler

import (
	"io"
	"log/slog"
	"net/http"
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

// TestAbortPanicIsNotLogged: a handler that panics with
// http.ErrAbortHandler (as httputil.ReverseProxy does when its client is
// gone) or a broken connection's error is let go without a line, as Gin's
// recovery does with it: the panic carrying its stack must still read as
// one, through the access line's recovery that raised it again.
func TestAbortPanicIsNotLogged(t *testing.T) {
	var logs testlog.Buffer
	opts := testOptions()
	opts.Logger = slog.New(slog.NewTextHandler(&logs, nil))
	ts := newTestServer(t, opts)
	ts.h.engine.GET("/abort", func(*gin.Context) { panic(http.ErrAbortHandler) })
	resp, err := http.Get(ts.URL + "/abort")
	if err == nil {
		resp.Body.Close()
	}
	ts.waitReturned(t, "/abort")
	if strings.Contains(logs.String(), "panicked") {
		t.Errorf("an aborted handler was logged as a panic:\n%s", logs.String())
	}
}
