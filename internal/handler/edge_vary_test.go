package handler

import (
	"maps"
	"net/http/httptest"
	"testing"

	"github.com/gorilla/handlers"
)

// TestVaryOfAHandlerAroundIsKept runs ssehub's handler under
// gorilla/handlers' CompressHandler, which says Vary: Accept-Encoding
// before the handler runs, and never again: every answer must keep it,
// beside the Origin the CORS middleware adds, or a shared cache would
// serve a gzip answer to a client that cannot read it. The CORS
// middleware set its Vary in place of the header's, and gin-contrib/cors
// its own again for an allowed origin.
func TestVaryOfAHandlerAroundIsKept(t *testing.T) {
	opts := corsOptions(false, "http://app.test")
	h := New(opts)
	ts := &testServer{Server: httptest.NewServer(handlers.CompressHandler(h)), h: h}
	t.Cleanup(func() { h.Close(); ts.Close(); waitDrained(t, h) })
	for _, tt := range []struct {
		name, method string
		header       map[string]string
	}{
		{"no Origin", "GET", nil},
		{"allowed origin", "GET", map[string]string{"Origin": "http://app.test"}},
		{"refused origin", "GET", map[string]string{"Origin": "http://evil.test"}},
		{"preflight", "OPTIONS", map[string]string{"Origin": "http://app.test", "Access-Control-Request-Method": "GET"}},
		{"refused preflight", "OPTIONS", map[string]string{"Origin": "http://evil.test", "Access-Control-Request-Method": "GET"}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			header := map[string]string{"Accept-Encoding": "gzip"}
			maps.Copy(header, tt.header)
			resp := ts.do(t, tt.method, "/healthz", nil, header)
			vary := resp.Header.Values("Vary")
			if !varies(vary, "Accept-Encoding") || !varies(vary, "Origin") {
				t.Errorf("%s, Vary %q: want Accept-Encoding and Origin", resp.Status, vary)
			}
		})
	}
}
