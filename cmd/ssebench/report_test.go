package main

import (
	"encoding/json"
	"testing"
	"time"
)

func TestDurationJSON(t *testing.T) {
	tests := []struct {
		d    Duration
		want string
	}{
		{Duration(1500 * time.Microsecond), "1.5"},
		{Duration(2 * time.Second), "2000"},
		{0, "0"},
		{-1, "-1"}, // "did not happen" must survive the round trip
	}
	for _, tt := range tests {
		b, err := json.Marshal(tt.d)
		if err != nil || string(b) != tt.want {
			t.Errorf("Marshal(%v) = %s, %v; want %s", time.Duration(tt.d), b, err, tt.want)
			continue
		}
		var back Duration
		if err := json.Unmarshal(b, &back); err != nil || back != tt.d {
			t.Errorf("Unmarshal(%s) = %v, %v; want %v", b, time.Duration(back), err, time.Duration(tt.d))
		}
	}
}
