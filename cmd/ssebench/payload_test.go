package main

import (
	"encoding/json"
	"testing"
)

func TestAppendPayloadSizeAndJSON(t *testing.T) {
	for _, size := range []int{0, 10, 64, 100, 256, 4096} {
		b := appendPayload([]byte("prefix"), 123456, 1700000000123456789, size)[len("prefix"):]
		if want := max(size, minPayloadBytes); len(b) != want {
			t.Errorf("size %d: payload is %d bytes, want %d: %s", size, len(b), want, b)
		}
		var v struct {
			Seq int64  `json:"seq"`
			TS  int64  `json:"ts"`
			Pad string `json:"pad"`
		}
		if err := json.Unmarshal(b, &v); err != nil || v.Seq != 123456 || v.TS != 1700000000123456789 {
			t.Errorf("size %d: %s decodes to %+v, %v", size, b, v, err)
		}
	}
}

func TestParsePayload(t *testing.T) {
	tests := []struct {
		data    string
		seq, ts int64
		ok      bool
	}{
		{string(appendPayload(nil, 7, 99, 64)), 7, 99, true},
		{`{"ts": 5, "pad": "x", "seq": 3}`, 3, 5, true}, // re-encoded by a hub
		{`{"seq":1}`, 0, 0, false},
		{`{"seq":"1","ts":2}`, 0, 0, false},
		{`{"seq":-1,"ts":2}`, 0, 0, false},
		{`Streamed line 3`, 0, 0, false},
		{``, 0, 0, false},
	}
	for _, tt := range tests {
		seq, ts, ok := parsePayload(tt.data)
		if ok != tt.ok || ok && (seq != tt.seq || ts != tt.ts) {
			t.Errorf("parsePayload(%q) = %d, %d, %v; want %d, %d, %v", tt.data, seq, ts, ok, tt.seq, tt.ts, tt.ok)
		}
	}
}
