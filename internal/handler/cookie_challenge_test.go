package handler

import (
	"net/http"
	"strings"
	"testing"

	"github.com/ssehub/ssehub/internal/stream"
)

// The token cookie sent in a way it is not read, more than 4 of it or on
// another site's request outside CORS, is a 400 for the way a token was
// sent, with the challenge RFC 6750 §3.1 gives such a request, as the
// README says of each of them.
func TestRefusedTokenCookieHasTheInvalidRequestChallenge(t *testing.T) {
	opts, _ := hubOptions(t, stream.MemoryOptions{})
	opts.Hub.SubscribeTokens = []string{"sub"}
	ts := newTestServer(t, opts)
	for _, tt := range []struct {
		name   string
		header http.Header
		says   string
	}{
		{"five cookies", http.Header{"Cookie": {"ssehub_token=a; ssehub_token=b; ssehub_token=c; ssehub_token=d; ssehub_token=e"}}, "at most 4 are read"},
		{"another site's script", http.Header{
			"Cookie":         {"ssehub_token=sub"},
			"Sec-Fetch-Site": {"cross-site"}, "Sec-Fetch-Mode": {"no-cors"}, "Sec-Fetch-Dest": {"script"},
		}, "outside CORS"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			req, err := http.NewRequestWithContext(t.Context(), "GET", ts.URL+"/api/v1/events?topic=a", nil)
			if err != nil {
				t.Fatal(err)
			}
			req.Header = tt.header
			resp, err := ts.Client().Do(req)
			if err != nil {
				t.Fatal(err)
			}
			defer resp.Body.Close()
			if msg := wantJSONError(t, resp, http.StatusBadRequest); !strings.Contains(msg, tt.says) {
				t.Errorf("error %q does not say %q", msg, tt.says)
			}
			if got, want := resp.Header.Get("WWW-Authenticate"), `Bearer realm="ssehub", error="invalid_request"`; got != want {
				t.Errorf("WWW-Authenticate %q, want %q", got, want)
			}
		})
	}
}
