package config

import (
	"errors"
	"fmt"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"
)

// decode converts raw, a value from viper (as the YAML parser, the
// environment or a flag produced it), and stores it in target. A nil raw
// leaves target unchanged. Errors name key and the value. Text is taken
// without the white space around it, and so is each item of a list,
// wherever it was written, as envValue takes an environment's: a quoted
// YAML " detached" was refused where SSEHUB_STREAM_TRANSPORT=" detached"
// was not. auth.jwt.hmac_secret is taken as it is (see envValue).
func decode(key string, target any, raw any) error {
	if raw == nil {
		return nil
	}
	if slices.Contains(secretKeys, key) {
		if err := checkSecretText(key, raw); err != nil {
			return err
		}
	}
	if t, ok := target.(*[]string); ok {
		list, err := decodeList(key, raw)
		if err != nil {
			return err
		}
		*t = list
		return nil
	}
	s, ok := scalar(raw)
	if !ok {
		kind := "a " + kindOf(target)
		if kind == "a integer" {
			kind = "an integer"
		}
		return invalid(key, fmt.Sprintf("expected %s, got a list or a mapping", kind))
	}
	switch t := target.(type) {
	case *string:
		*t = envValue(key, s)
	case *bool:
		b, err := strconv.ParseBool(strings.TrimSpace(s))
		if err != nil {
			return invalid(key, fmt.Sprintf("invalid bool %q (use true or false)", s))
		}
		*t = b
	case *int:
		n, msg := parseInt(s)
		if msg != "" {
			return invalid(key, msg)
		}
		*t = n
	case *time.Duration:
		d, err := time.ParseDuration(strings.TrimSpace(s))
		if err != nil && durationSyntax.MatchString(strings.TrimSpace(s)) {
			// Written right, but longer than a time.Duration holds.
			return invalid(key, fmt.Sprintf("duration %q is out of range (at most about 290 years, 2562047h)", s))
		}
		if err != nil {
			return invalid(key, fmt.Sprintf("invalid duration %q (use a Go duration such as 15s or 1500ms)", s))
		}
		*t = d
	default:
		panic(fmt.Sprintf("config: key %s has unsupported target %T", key, target))
	}
	return nil
}

// parseInt reads s, an integer key's value, as the file's YAML and a
// variable both read it: decimal digits, with a sign or not, or 0x, 0o or
// 0b and digits, with _ between digits (1_000_000). A leading zero is
// refused in both: 010 is the octal 8 to YAML and 10 to strconv, and
// SSEHUB_HUB_HISTORY_SIZE=010 was 10 where history_size: 010 stops the
// start. It returns the number, or what is wrong with s, naming it.
func parseInt(s string) (int, string) {
	t := strings.TrimSpace(s)
	if plain := strings.ReplaceAll(t, "_", ""); leadingZero.MatchString(plain) {
		digits := strings.TrimLeft(plain, "+-")
		sign := plain[:len(plain)-len(digits)]
		if digits = strings.TrimLeft(digits, "0"); digits == "" {
			digits = "0"
		}
		decimal := strings.TrimPrefix(sign, "+") + digits
		if octal, err := strconv.ParseInt(plain, 8, 64); err == nil && strconv.FormatInt(octal, 10) != decimal {
			return 0, fmt.Sprintf("invalid integer %q: a leading zero, which YAML reads as the octal %d: write %s, or %d", s, octal, decimal, octal)
		}
		return 0, fmt.Sprintf("invalid integer %q: a leading zero: write %s", s, decimal)
	}
	n, err := strconv.ParseInt(t, 0, strconv.IntSize)
	if errors.Is(err, strconv.ErrRange) {
		return 0, fmt.Sprintf("integer %q is out of range", s)
	}
	if err != nil {
		return 0, fmt.Sprintf("invalid integer %q", s)
	}
	return int(n), ""
}

// durationSyntax matches what time.ParseDuration reads, whatever the
// size: a number and a unit, one or more times, with a sign before.
var durationSyntax = regexp.MustCompile(`^[-+]?(([0-9]+(\.[0-9]*)?|\.[0-9]+)(ns|us|µs|μs|ms|s|m|h))+$`)

// secretKeys are the keys that hold secrets, which checkSecretText
// checks.
var secretKeys = []string{"auth.publish_tokens", "auth.subscribe_tokens", "auth.jwt.hmac_secret"}

// checkSecretText refuses a secret, or a list item of one, that YAML read
// as a number or a bool: turned back into text it is not what was written
// (0123456 is read as 42798, 0x1F as 31, 1e3 as 1000), so the server took
// another token, often a shorter one. The error does not show the value.
//
// A date (2001-12-14, which YAML reads as a time) is refused alike: it was
// "expected a string, got a list or a mapping", or "expected a list, got"
// and the date, the secret, shown.
func checkSecretText(key string, raw any) error {
	if list, ok := raw.([]any); ok {
		for i, item := range list {
			if msg := notText(item); msg != "" {
				return invalid(fmt.Sprintf("%s[%d]", key, i), msg)
			}
		}
	} else if msg := notText(raw); msg != "" {
		return invalid(key, msg)
	}
	return nil
}

// notText returns, when raw is a single value other than a string (a
// number, a bool or a date), what is wrong with it as a secret, else "".
func notText(raw any) string {
	if _, date := raw.(time.Time); date {
		return "a YAML date, not text: quote it (value not shown)"
	}
	_, text := raw.(string)
	if _, single := scalar(raw); single && !text {
		return "a YAML number or bool, not text: quote it (value not shown)"
	}
	return ""
}

// decodeList converts a YAML sequence, or a comma-separated string (from
// the environment or YAML), into a non-nil list, each entry trimmed. An
// empty entry is refused, naming its position: in "a,,b" or "a,b," it is
// most often a token or an origin left out, and dropping it started the
// server without a word. A string of commas alone ("," from the
// environment) is the empty list, as is a YAML []. A YAML item left
// without a value (null) is an empty one.
func decodeList(key string, raw any) ([]string, error) {
	var items []string
	if s, ok := scalar(raw); ok {
		// A number or a bool the file wrote alone (exposed_headers: 42,
		// which checkYAMLScalars saw written as its text) is the text a
		// variable would give: it was refused as "expected a list, got 42"
		// where SSEHUB_CORS_EXPOSED_HEADERS=42 is a list of one.
		raw = s
	}
	switch v := raw.(type) {
	case string:
		items = strings.Split(v, ",")
		if strings.Trim(v, ", \t\r\n") == "" {
			return []string{}, nil
		}
	case []string:
		items = v
	case []any:
		items = make([]string, 0, len(v))
		for i, item := range v {
			s, ok := scalar(item)
			if item == nil {
				s, ok = "", true // an item left without a value ("-" alone, ~): an empty one
			}
			if !ok {
				return nil, invalid(fmt.Sprintf("%s[%d]", key, i), "expected a string")
			}
			items = append(items, s)
		}
	case map[string]any:
		// An empty mapping ({}): viper reads a key under one as a key
		// of its own, which checkKeys reports.
		return nil, invalid(key, "expected a list, got a mapping")
	default:
		return nil, invalid(key, fmt.Sprintf("expected a list, got %v", raw))
	}
	list := make([]string, 0, len(items))
	for i, item := range items {
		item = strings.TrimSpace(item)
		if item == "" {
			msg := "empty item in a list: write the value that belongs there, or remove the item (an empty list is [])"
			if _, ok := raw.(string); ok {
				msg = "empty item in a comma-separated list (two commas in a row, or one at an end): write the value that belongs there, or remove the comma (\",\" alone is the empty list)"
			}
			return nil, invalid(fmt.Sprintf("%s[%d]", key, i), msg)
		}
		list = append(list, item)
	}
	return list, nil
}

// scalar returns raw as text when it is a single value (string, number or
// bool), and false for lists, mappings and anything else.
func scalar(raw any) (string, bool) {
	switch v := raw.(type) {
	case string:
		return v, true
	case bool, int, int8, int16, int32, int64, uint, uint8, uint16, uint32, uint64, float32, float64:
		return fmt.Sprint(v), true
	}
	return "", false
}
