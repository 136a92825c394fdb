package main

import (
	"errors"
	"testing"
)

func TestParseTargetLoopbackOnly(t *testing.T) {
	tests := []struct {
		url         string
		allowRemote bool
		wantErr     error
		addr        string
	}{
		{"http://127.0.0.1:8111", false, nil, "127.0.0.1:8111"},
		{"http://localhost", false, nil, "localhost:80"},
		{"https://LOCALHOST/prefix/", false, nil, "LOCALHOST:443"},
		{"http://127.9.8.7:1", false, nil, "127.9.8.7:1"},
		{"http://[::1]:8111", false, nil, "[::1]:8111"},
		{"http://10.0.0.1:8111", false, ErrRemoteTarget, ""},
		{"http://192.168.1.2", false, ErrRemoteTarget, ""},
		{"http://example.com", false, ErrRemoteTarget, ""},
		{"http://localhost.example.com", false, ErrRemoteTarget, ""},
		{"http://example.com", true, nil, "example.com:80"},
		{"ftp://127.0.0.1", false, ErrBadURL, ""},
		{"127.0.0.1:8111", false, ErrBadURL, ""},
		{"http://", false, ErrBadURL, ""},
	}
	for _, tt := range tests {
		tgt, err := parseTarget(tt.url, tt.allowRemote, false)
		if !errors.Is(err, tt.wantErr) {
			t.Errorf("parseTarget(%q, %v) error = %v, want %v", tt.url, tt.allowRemote, err, tt.wantErr)
			continue
		}
		if err == nil && tgt.addr != tt.addr {
			t.Errorf("parseTarget(%q) dials %q, want %q", tt.url, tgt.addr, tt.addr)
		}
	}
}

func TestAppendRequest(t *testing.T) {
	tgt, err := parseTarget("http://127.0.0.1:8111/hub/", false, false)
	if err != nil {
		t.Fatal(err)
	}
	got := string(tgt.appendRequest(nil, "POST", "/api/v1/topics/a/events", []byte(`{"data":1}`),
		header{"Authorization", bearer("T")}, header{"X-Empty", ""}))
	want := "POST /hub/api/v1/topics/a/events HTTP/1.1\r\nHost: 127.0.0.1:8111\r\nUser-Agent: ssebench\r\n" +
		"Authorization: Bearer T\r\nContent-Length: 10\r\n\r\n{\"data\":1}"
	if got != want {
		t.Errorf("request =\n%q\nwant\n%q", got, want)
	}
}
