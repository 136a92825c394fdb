package main

import (
	"bytes"
	"context"
	"io"
	"net/http"
	"os"
	"regexp"
	"strings"
	"testing"

	"github.com/ssehub/ssehub/config"
)

// TestReadmeExampleAnswers keeps the answers the README quotes the same,
// byte for byte, as those the server sends: the publish of "Try it with
// curl", the token stream's frame, and the 403 of "JSON Web Tokens" (with
// a token minted as the README mints it), each with the values that vary
// written as the README writes them.
func TestReadmeExampleAnswers(t *testing.T) {
	data, err := os.ReadFile("../../README.md")
	if err != nil {
		t.Fatal(err)
	}
	readme := string(data)
	quoted := func(re string) string {
		t.Helper()
		m := regexp.MustCompile(re).FindStringSubmatch(readme)
		if m == nil {
			t.Fatalf("README: nothing matches %s: update this test with the README", re)
		}
		return m[1]
	}

	secret := strings.Repeat("s3cret", 6)
	cfg := config.Default()
	cfg.Auth.PublishTokens = []string{"s3cret"}
	cfg.Auth.JWT.HMACSecret = secret
	base, _ := startMain(t, cfg)

	do := func(method, path, body string, header ...string) string {
		t.Helper()
		req, err := http.NewRequest(method, base+path, strings.NewReader(body))
		if err != nil {
			t.Fatal(err)
		}
		for i := 0; i < len(header); i += 2 {
			req.Header.Set(header[i], header[i+1])
		}
		res, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer res.Body.Close()
		if res.StatusCode == http.StatusOK && strings.HasPrefix(path, "/api/v1/events") {
			return "a subscription's stream, which does not end" // not read
		}
		b, err := io.ReadAll(res.Body)
		if err != nil {
			t.Fatal(err)
		}
		return string(b)
	}

	// curl -X POST .../orders.eu/events ... # → 201 {"id":"...","topic":"orders.eu"}
	want := quoted(`(?m)# → 201 (\{.*"orders\.eu"\})$`)
	got := do(http.MethodPost, "/api/v1/topics/orders.eu/events", `{"event": "created", "data": {"id": 42}}`,
		"Authorization", "Bearer s3cret", "Content-Type", "application/json")
	if got = regexp.MustCompile(`"id":"[0-9]+"`).ReplaceAllString(got, `"id":"..."`); got != want {
		t.Errorf("publish answered %s, README says %s", got, want)
	}

	// POST /stream → data: {"index":i,"token":"..."} per word
	want = quoted("→ `(data: [^`]*)` per word")
	got = do(http.MethodPost, "/stream", `{"text": "one", "interval": "0s"}`, "Content-Type", "application/json")
	line := regexp.MustCompile(`(?m)^data: \{.*$`).FindString(got)
	if line = strings.NewReplacer(`"index":0`, `"index":i`, `"token":"one"`, `"token":"..."`).Replace(line); line != want {
		t.Errorf("POST /stream sent the line %q, README says %q", line, want)
	}

	// The 403 for a pattern a token does not grant, with a token minted
	// as the README's `ssehub token` example mints it.
	var minted bytes.Buffer
	getenv := func(name string) string {
		if name == "SSEHUB_AUTH_JWT_HMAC_SECRET" {
			return secret
		}
		return ""
	}
	var args []string
	for _, word := range regexp.MustCompile(`'[^']*'|[^\s']+`).FindAllString(quoted(`ssehub token ((?:--[a-z]+ \S+ ?)+)\)`), -1) {
		args = append(args, strings.Trim(word, "'"))
	}
	if err := token(context.Background(), append(args, "--config", os.DevNull), getenv, &minted, io.Discard); err != nil {
		t.Fatal(err)
	}
	want = quoted("naming the first\npattern refused: `([^`]*)`")
	got = do(http.MethodGet, "/api/v1/events?topic=user.43.x&access_token="+strings.TrimSpace(minted.String()), "")
	if got != want {
		t.Errorf("a subscription the token does not grant got %s, README says %s", got, want)
	}
}

// TestReadmeShellExamplesRunAsWritten keeps the README's ```sh blocks
// runnable as a reader pastes them into a shell of a fresh checkout: a URL
// with a query is quoted (zsh, macOS's shell, takes an unquoted ? for a
// glob and refuses the command: "no matches found"), and ssehub runs as
// go run ./cmd/ssehub, which those blocks start it with, not as an ssehub
// command that no step put on the PATH.
func TestReadmeShellExamplesRunAsWritten(t *testing.T) {
	data, err := os.ReadFile("../../README.md")
	if err != nil {
		t.Fatal(err)
	}
	blocks := regexp.MustCompile("(?s)```sh\n(.*?)```").FindAllStringSubmatch(string(data), -1)
	if len(blocks) == 0 {
		t.Fatal("README has no ```sh block: update this test with the README")
	}
	unquotedQuery := regexp.MustCompile(`(?:^|\s)[^\s'"]*localhost:[0-9]+[^\s'"]*\?`)
	bareCommand := regexp.MustCompile(`(?:^|[;&|(]\s*|\$\()ssehub\s`)
	for _, block := range blocks {
		for line := range strings.SplitSeq(block[1], "\n") {
			if unquotedQuery.MatchString(line) {
				t.Errorf("README: a URL with a query is not quoted, which zsh refuses as a glob: %s", line)
			}
			if bareCommand.MatchString(line) {
				t.Errorf("README: runs an ssehub command that no example installs (go run ./cmd/ssehub does): %s", line)
			}
		}
	}
}
