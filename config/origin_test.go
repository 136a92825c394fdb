package config

import "testing"

func TestAllowOrigin(t *testing.T) {
	tests := []struct {
		allowed []string
		origin  string
		want    bool
	}{
		{nil, "http://localhost:5173", false},
		{[]string{}, "http://localhost:5173", false},
		{[]string{"http://localhost:5173"}, "http://localhost:5173", true},
		{[]string{"http://localhost:5173"}, "http://localhost:5174", false},
		{[]string{"http://localhost:5173"}, "https://localhost:5173", false},
		{[]string{"http://localhost:5173"}, "http://localhost", false},
		{[]string{"http://localhost:5173"}, "http://localhost:5173/", false},
		{[]string{"HTTP://LocalHost:5173"}, "http://localhost:5173", true},
		{[]string{"http://localhost:5173"}, "HTTP://LOCALHOST:5173", true},
		{[]string{"https://example.com"}, "https://example.com:443", true},
		{[]string{"https://example.com:443"}, "https://example.com", true},
		{[]string{"http://example.com:80"}, "http://example.com", true},
		{[]string{"https://example.com"}, "https://example.com.evil.test", false},
		{[]string{"https://example.com"}, "https://evilexample.com", false},
		{[]string{"https://*.example.com"}, "https://a.example.com", true},
		{[]string{"https://*.example.com"}, "https://A.Example.com", true},
		{[]string{"https://*.example.com"}, "https://example.com", false},
		{[]string{"https://*.example.com"}, "https://a.b.example.com", false},
		{[]string{"https://*.example.com"}, "https://.example.com", false},
		{[]string{"https://*.example.com"}, "https://aexample.com", false},
		{[]string{"https://*.example.com"}, "http://a.example.com", false},
		{[]string{"https://*.example.com"}, "https://a.example.com:8443", false},
		{[]string{"https://*.example.com:8443"}, "https://a.example.com:8443", true},
		{[]string{"https://*.example.com"}, "https://a.example.com.evil.test", false},
		{[]string{"*"}, "https://anything.test", true},
		{[]string{"*"}, "null", true},
		{[]string{"http://a.test"}, "null", false},
		{[]string{"http://a.test", "http://b.test"}, "http://b.test", true},
		{[]string{"http://a/b", "http://b.test"}, "http://b.test", true},
		{[]string{"http://[::1]:8080"}, "http://[::1]:8080", true},
		// Browsers send an IPv6 address in its shortest form: an entry
		// written longer matches it.
		{[]string{"http://[0:0::1]:8080"}, "http://[::1]:8080", true},
		{[]string{"http://[2001:DB8:0:0::0001]"}, "http://[2001:db8::1]", true},
		{[]string{"http://[::ffff:7f00:1]"}, "http://[::ffff:7f00:1]", true},
		{[]string{"http://[::1]"}, "http://[::2]", false},
		{[]string{"http://127.0.0.1:8080"}, "http://127.0.0.1:8080", true},
		{[]string{"http://127.0.0.1:8080"}, "http://127.0.0.1:8081", false},
		{[]string{"http://a.test"}, "", false},
		{[]string{"http://a.test"}, "http://user@a.test", false},
	}
	for _, tt := range tests {
		c := CORSConfig{AllowedOrigins: tt.allowed}
		if got := c.AllowOrigin(tt.origin); got != tt.want {
			t.Errorf("AllowOrigin(%q) with %q = %v, want %v", tt.origin, tt.allowed, got, tt.want)
		}
	}
}
