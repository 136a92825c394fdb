package config

import (
	"errors"
	"fmt"
	"math"
	"regexp"
	"slices"
	"strings"

	"go.yaml.in/yaml/v3"
)

// checkYAMLScalars reports every value of the YAML file data that YAML
// reads as something else than what ssehub would take from the same text
// in a variable. A text key (or a list item of one) written as a number, a
// bool or a timestamp is turned back into text, which need not be what
// was written: nats.stream: 0123 named the stream 83, 1.50 became 1.5,
// 123456789012345678901 became 1.2345678901234568e+20. An integer key
// written with a leading zero is octal to YAML (010 is 8), decimal in
// SSEHUB_ variables (10), and one too large for YAML's integers is a
// float to it (1e+20) where a variable's is out of range, as is one in
// exponent form (1e3). Secrets are checkSecretText's, which shows no
// value. A number written as the text it stands for (123, 1.5) is fine.
func checkYAMLScalars(data []byte) error {
	var doc yaml.Node
	if err := yaml.Unmarshal(data, &doc); err != nil || len(doc.Content) == 0 {
		return err
	}
	kinds := map[string]string{}
	var c Config
	for _, f := range c.fields() {
		kinds[f.key] = kindOf(f.target)
	}
	aliased := aliasedNodes(&doc)
	lines := yamlLines(data)
	var errs []error
	var walk func(mapping *yaml.Node, key string)
	walk = func(mapping *yaml.Node, key string) {
		for _, kv := range entries(mapping) {
			k, v := join(key, strings.ToLower(kv[0].Value)), kv[1]
			switch {
			case slices.Contains(secretKeys, k):
				errs = append(errs, checkSecretNode(k, v, aliased))
				if v != nil && v.Kind == yaml.SequenceNode {
					for i, item := range v.Content {
						errs = append(errs, checkSecretNode(fmt.Sprintf("%s[%d]", k, i), resolve(item), aliased))
					}
				}
			case kinds[k] == "string":
				errs = append(errs, checkValueNode(k, v, aliased, lines), checkTextScalar(k, v))
			case kinds[k] == "list" && v.Kind == yaml.SequenceNode:
				for i, item := range v.Content {
					ik, item := fmt.Sprintf("%s[%d]", k, i), resolve(item)
					errs = append(errs, checkValueNode(ik, item, aliased, lines), checkTextScalar(ik, item))
				}
			case kinds[k] == "list":
				errs = append(errs, checkValueNode(k, v, aliased, lines), checkTextScalar(k, v))
			case kinds[k] == "integer":
				errs = append(errs, checkValueNode(k, v, aliased, lines), checkOctal(k, v), checkIntRange(k, v))
			case kinds[k] == "":
				walk(v, k)
			default: // bool, duration
				errs = append(errs, checkValueNode(k, v, aliased, lines))
			}
		}
	}
	walk(doc.Content[0], "")
	return errors.Join(errs...)
}

// checkSecretNode checks that n, the value of a secret key or an item of
// one, does not start with what YAML reads as a tag (!) or an anchor (&)
// where a token or a secret written unquoted would: YAML takes them
// out of the text, leaving what follows a space, or no value at all, so
// that subscribe_tokens: &... left subscribing open to anyone and
// hmac_secret: !... turned JWTs off, without a word. An anchor that an
// alias uses, and the tags !!str and !!binary (a secret's bytes in
// base64), are meant, as are a list's. The value is not shown.
func checkSecretNode(key string, n *yaml.Node, aliased map[*yaml.Node]bool) error {
	switch {
	case n == nil || n.Kind != yaml.ScalarNode:
		return nil // a list's anchor or tag is not a token's start
	case n.Anchor != "" && !aliased[n] && quotedScalar(n):
		return invalid(key, "an anchor that no alias uses, before a quoted value: remove the anchor (value not shown)")
	case n.Anchor != "" && !aliased[n]:
		// The anchor's name is not shown: it is the secret's start.
		return invalid(key, "starts with &, which YAML reads as an anchor, not as text: quote it if the & is part of the value, or remove the anchor, which no alias uses (value not shown)")
	case n.Style&yaml.TaggedStyle != 0 && n.Tag != "!!str" && n.Tag != "!!binary":
		return invalid(key, "starts with !, which YAML reads as a tag, not as text: quote it (value not shown)")
	}
	return nil
}

// checkValueNode checks that n, the value of a key other than a secret or
// an item of one, does not start with what YAML reads as a tag (!) or an
// anchor (&), as checkSecretNode does for secrets, showing what was
// written: YAML took it out of the value, so that log.level: &debug was no
// value at all, the default, and cors.allowed_origins: &x an empty list,
// without a word. An anchor that an alias uses, and YAML's own tags
// (yamlTags: !!str, !!int), are meant. What was written is shown from
// lines, the file's, rather than as parsed (&nats://... is the anchor nats
// and the value ://..., no space between them).
func checkValueNode(key string, n *yaml.Node, aliased map[*yaml.Node]bool, lines []string) error {
	if n == nil || n.Kind != yaml.ScalarNode {
		return nil
	}
	written := func(prefix string) string {
		w := strings.TrimSuffix(prefix+" "+n.Value, " ")
		if src, ok := writtenPlain(lines, n); ok {
			w = src
		}
		if strings.HasPrefix(key, "nats.url") {
			w = redactURL(w) // a password, a token, the tag included (!user:password@host)
		}
		return w
	}
	switch {
	case n.Anchor != "" && !aliased[n] && quotedScalar(n):
		return invalid(key, fmt.Sprintf("an anchor (&%s) that no alias (*%s) uses, before a quoted value: remove the anchor", n.Anchor, n.Anchor))
	case n.Anchor != "" && !aliased[n]:
		unused := fmt.Sprintf("remove the anchor (&%s), which no alias (*%s) uses", n.Anchor, n.Anchor)
		if strings.HasPrefix(key, "nats.url") {
			unused = "remove the anchor, which no alias uses" // its name may be a token (&t0ken@host)
		}
		return invalid(key, fmt.Sprintf("%q starts with &, which YAML reads as an anchor, not as text: quote it if the & is part of the value, or %s", written("&"+n.Anchor), unused))
	case n.Style&yaml.TaggedStyle != 0 && !slices.Contains(yamlTags, n.Tag):
		return invalid(key, fmt.Sprintf("%q starts with !, which YAML reads as a tag, not as text: quote it", written(n.Tag)))
	}
	return nil
}

// quotedScalar reports whether n, a scalar, was written quoted, or as a
// block (| or >): an anchor before it is no part of its text, whose start
// is the quote or the block's indicator.
func quotedScalar(n *yaml.Node) bool {
	return n.Style&(yaml.DoubleQuotedStyle|yaml.SingleQuotedStyle|yaml.LiteralStyle|yaml.FoldedStyle) != 0
}

// writtenPlain returns the text of lines, a file's, that wrote n, a plain
// scalar on one line with an anchor or a tag: from its & or ! to the end
// of its value.
func writtenPlain(lines []string, n *yaml.Node) (string, bool) {
	if n.Value == "" || n.Line < 1 || n.Line > len(lines) {
		return "", false
	}
	line := []rune(strings.TrimRight(lines[n.Line-1], lineBreaks))
	if n.Column < 1 || n.Column > len(line) {
		return "", false
	}
	src := string(line[n.Column-1:])
	pos := 0
	for pos < len(src) && (src[pos] == '&' || src[pos] == '!') {
		if src[pos] == '&' {
			pos += len("&" + n.Anchor)
		} else if i := strings.IndexAny(src[pos:], " \t"); i >= 0 {
			pos += i
		} else {
			return "", false
		}
		if pos > len(src) {
			return "", false
		}
		pos += len(src[pos:]) - len(strings.TrimLeft(src[pos:], " \t"))
	}
	if pos == 0 || !strings.HasPrefix(src[pos:], n.Value) {
		return "", false
	}
	return src[:pos+len(n.Value)], true
}

// yamlTags are YAML's own tags of a scalar, which the library reads: one
// of another name after !! (!!prod) is taken out of the value as a tag of
// the user's would be.
var yamlTags = []string{"!!str", "!!int", "!!float", "!!bool", "!!null", "!!binary", "!!timestamp"}

// aliasedNodes returns the nodes of the YAML document doc that an alias
// refers to.
func aliasedNodes(doc *yaml.Node) map[*yaml.Node]bool {
	aliased := map[*yaml.Node]bool{}
	var walk func(n *yaml.Node)
	walk = func(n *yaml.Node) {
		if n.Kind == yaml.AliasNode && n.Alias != nil {
			aliased[n.Alias] = true
		}
		for _, c := range n.Content {
			walk(c)
		}
	}
	walk(doc)
	return aliased
}

// checkTextScalar checks that n, the value of a text key, is text, or a
// scalar that YAML reads as a value written just as the text it becomes.
func checkTextScalar(key string, n *yaml.Node) error {
	if n == nil || n.Kind != yaml.ScalarNode || n.Tag == "!!str" || n.Tag == "!!null" {
		return nil
	}
	var v any
	if n.Decode(&v) != nil {
		return nil // viper reports what does not decode
	}
	if s := fmt.Sprint(v); s != n.Value {
		return invalid(key, fmt.Sprintf("YAML reads %s as %s, not as the text %q: quote it", n.Value, s, n.Value))
	}
	return nil
}

// leadingZero matches an integer YAML reads as octal: a 0 and more digits,
// once its underscores are dropped, as YAML drops them (0_10 is 8 too).
var leadingZero = regexp.MustCompile(`^[-+]?0[0-9]+$`)

// checkOctal checks that n, the value of an integer key, is not an integer
// with a leading zero.
func checkOctal(key string, n *yaml.Node) error {
	if n == nil || n.Kind != yaml.ScalarNode || n.Tag != "!!int" {
		return nil
	}
	plain := strings.ReplaceAll(n.Value, "_", "")
	if !leadingZero.MatchString(plain) {
		return nil
	}
	var v int
	if n.Decode(&v) != nil {
		return nil // viper reports what does not decode
	}
	sign, digits := "", strings.TrimLeft(plain, "+")
	if d, ok := strings.CutPrefix(digits, "-"); ok {
		sign, digits = "-", d
	}
	if digits = strings.TrimLeft(digits, "0"); digits == "" {
		digits = "0"
	}
	return invalid(key, fmt.Sprintf("YAML reads %s as the octal %d: write %d, or %s%s without the leading zero",
		n.Value, v, v, sign, digits))
}

// integerDigits matches an integer written in decimal digits, once its
// underscores are dropped, as YAML drops them.
var integerDigits = regexp.MustCompile(`^[-+]?[0-9]+$`)

// checkIntRange checks that n, the value of an integer key, is not what
// YAML reads as a float. An integer in digits too large for YAML's
// integers is one: decoding it named "1e+20", not what was written, and
// called it an invalid integer where SSEHUB_ variables say out of range.
// So is one in exponent form: 1e3 was taken as 1000 where a variable
// refuses it, and 1e6 was refused as "1e+06".
func checkIntRange(key string, n *yaml.Node) error {
	if n == nil || n.Kind != yaml.ScalarNode || n.Tag != "!!float" {
		return nil
	}
	if integerDigits.MatchString(strings.ReplaceAll(n.Value, "_", "")) {
		// Too large, or 08 and 09, which have a leading zero and are no
		// octal; or an integer written with YAML's !!float before it,
		// which is the integer written, as with !!int.
		if _, msg := parseInt(n.Value); msg != "" {
			return invalid(key, msg)
		}
		return nil
	}
	var f float64
	if n.Decode(&f) == nil && f == math.Trunc(f) && math.Abs(f) < 1<<53 {
		return invalid(key, fmt.Sprintf("invalid integer %q: write it in digits, %d", n.Value, int64(f)))
	}
	return invalid(key, fmt.Sprintf("invalid integer %q", n.Value))
}

// writtenScalars returns the text the YAML file data writes for each bool,
// integer or duration key it gives a single value, for decode to read as it reads
// a variable's: YAML's own reading of a number or a bool, which viper
// hands on, is not what was written. heartbeat_interval: 0.0 is YAML's
// float 0, taken as 0s where SSEHUB_STREAM_HEARTBEAT_INTERVAL=0.0 is
// refused, and 0x10 or 1_000 were refused as "16" or "1000", values the
// file does not hold; max_streams: 10_ was YAML's 10, which no variable
// takes. An integer YAML reads as a float or an octal is checkIntRange's
// and checkOctal's. A key left without a value (null) is not written.
func writtenScalars(data []byte) map[string]string {
	var doc yaml.Node
	if yaml.Unmarshal(data, &doc) != nil || len(doc.Content) == 0 {
		return nil
	}
	kinds := map[string]string{}
	var c Config
	for _, f := range c.fields() {
		kinds[f.key] = kindOf(f.target)
	}
	written := map[string]string{}
	var walk func(mapping *yaml.Node, key string)
	walk = func(mapping *yaml.Node, key string) {
		for _, kv := range entries(mapping) {
			k, v := join(key, strings.ToLower(kv[0].Value)), kv[1]
			switch kinds[k] {
			case "bool", "integer", "duration":
				if v != nil && v.Kind == yaml.ScalarNode && v.Tag != "!!null" {
					written[k] = v.Value
				}
			case "":
				walk(v, k)
			}
		}
	}
	walk(doc.Content[0], "")
	return written
}
