package main

import (
	"bufio"
	"errors"
	"io"
	"strings"
	"testing"
)

func TestReadResponseHead(t *testing.T) {
	long := strings.Repeat("v", 2000) // longer than the reader's buffer
	tests := []struct {
		name string
		in   string
		want responseHead
		body string
	}{
		{
			"chunked", "HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n",
			responseHead{status: 200, contentLength: -1, chunked: true, contentType: "text/event-stream"},
			"hello",
		},
		{
			"length", "HTTP/1.1 201 Created\r\ncontent-length: 4\r\n\r\nabcdEXTRA",
			responseHead{status: 201, contentLength: 4},
			"abcd",
		},
		{
			"close delimited", "HTTP/1.1 200 OK\nConnection: close\n\nto the end",
			responseHead{status: 200, contentLength: -1, close: true},
			"to the end",
		},
		{
			"http/1.0", "HTTP/1.0 200 OK\r\nX-Long: " + long + "\r\n\r\nbody",
			responseHead{status: 200, contentLength: -1, close: true},
			"body",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			br := bufio.NewReaderSize(strings.NewReader(tt.in), 16)
			h, err := readResponseHead(br)
			if err != nil || h != tt.want {
				t.Fatalf("head = %+v, %v; want %+v", h, err, tt.want)
			}
			body, err := io.ReadAll(h.body(br))
			if err != nil || string(body) != tt.body {
				t.Errorf("body = %q, %v; want %q", body, err, tt.body)
			}
		})
	}
}

func TestReadResponseHeadErrors(t *testing.T) {
	for _, in := range []string{
		"",
		"HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\n", // cut before the blank line
		"SSH-2.0-OpenSSH\r\n\r\n",
		"HTTP/1.1 abc OK\r\n\r\n",
		"HTTP/1.1 200 OK\r\nno colon here\r\n\r\n",
		"HTTP/1.1 200 OK\r\nContent-Length: -3\r\n\r\n",
		"HTTP/1.1 200 OK\r\nX: " + strings.Repeat("a", maxHeadBytes+10) + "\r\n\r\n",
	} {
		_, err := readResponseHead(bufio.NewReaderSize(strings.NewReader(in), 16))
		if err == nil {
			t.Errorf("readResponseHead(%.40q) succeeded, want an error", in)
		}
		if !errors.Is(err, ErrBadResponse) && !errors.Is(err, io.ErrUnexpectedEOF) && !errors.Is(err, bufio.ErrBufferFull) {
			t.Errorf("readResponseHead(%.40q) = %v, want ErrBadResponse or a read error", in, err)
		}
	}
}
