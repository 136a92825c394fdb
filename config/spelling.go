package config

import (
	"errors"
	"fmt"
	"strconv"
	"strings"

	"go.yaml.in/yaml/v3"
)

// spelling is where the YAML file writes a key: the path as written, and
// the line of its last part.
type spelling struct {
	text string
	line int
}

// checkSpellings reports every key that the YAML file data writes twice in
// two spellings: in another case (max_age and MAX_AGE in one section), or
// dotted and nested ("server.addr": beside server: with addr: under it).
// Viper lowercases keys and joins sections with dots, so both spellings
// are one key to it and it kept one without a word: cors: {max_age: 12h,
// MAX_AGE: 1h} gave 1h. viper.AllKeys, which checkKeys reads, is already
// merged, so the file itself is read here, with the YAML library viper
// reads it with. A section written twice is reported once, not each key
// under it. A key written twice in one spelling is YAML's own error, which
// viper has reported before this runs.
func checkSpellings(data []byte) error {
	var doc yaml.Node
	if err := yaml.Unmarshal(data, &doc); err != nil || len(doc.Content) == 0 {
		return err
	}
	seen := map[string]spelling{}
	var errs []error
	var walk func(mapping *yaml.Node, key, text string)
	walk = func(mapping *yaml.Node, key, text string) {
		for _, kv := range entries(mapping) {
			k, v := kv[0], kv[1]
			part := k.Value
			if strings.Contains(part, ".") {
				part = strconv.Quote(part)
			}
			s := spelling{text: join(text, part), line: k.Line}
			lower := join(key, strings.ToLower(k.Value))
			if first, ok := seen[lower]; ok {
				why := "a dotted key is the nested one"
				if strings.EqualFold(first.text, s.text) {
					why = "case does not count in a key"
				}
				if shown, ok := shownKey(lower); !ok {
					// Most likely a token or a secret written where its
					// key belongs (see checkKeys).
					errs = append(errs, &KeyError{Key: shown, Err: ErrDuplicateKey, Msg: fmt.Sprintf(
						"a key, its name not shown as it does not look like one, written twice, at line %d and at line %d: %s, and only one would be read; keep one",
						first.line, s.line, why)})
					continue
				}
				errs = append(errs, &KeyError{Key: lower, Err: ErrDuplicateKey, Msg: fmt.Sprintf(
					"written twice, as %s (line %d) and as %s (line %d): %s, and only one would be read; keep one",
					first.text, first.line, s.text, s.line, why)})
				continue
			}
			seen[lower] = s
			walk(v, lower, s.text)
		}
	}
	walk(doc.Content[0], "", "")
	return errors.Join(errs...)
}

// entries returns the key and value nodes of mapping, aliases resolved and
// merge keys (<<: *anchor) expanded as YAML defines them: a key of mapping
// itself overrides a merged one of the same spelling, and an earlier merged
// mapping a later one. Anything but a mapping has none.
func entries(mapping *yaml.Node) [][2]*yaml.Node {
	mapping = resolve(mapping)
	if mapping == nil || mapping.Kind != yaml.MappingNode {
		return nil
	}
	var own, merged [][2]*yaml.Node
	for i := 0; i+1 < len(mapping.Content); i += 2 {
		k, v := mapping.Content[i], resolve(mapping.Content[i+1])
		if k.Tag != "!!merge" {
			own = append(own, [2]*yaml.Node{k, v})
			continue
		}
		sources := []*yaml.Node{v}
		if v != nil && v.Kind == yaml.SequenceNode {
			sources = v.Content
		}
		for _, src := range sources {
			merged = append(merged, entries(src)...)
		}
	}
	for _, m := range merged {
		if !hasKey(own, m[0].Value) {
			own = append(own, m)
		}
	}
	return own
}

// hasKey reports whether kvs holds a key spelt exactly key.
func hasKey(kvs [][2]*yaml.Node, key string) bool {
	for _, kv := range kvs {
		if kv[0].Value == key {
			return true
		}
	}
	return false
}

// resolve returns the node an alias stands for, n itself when it is none.
func resolve(n *yaml.Node) *yaml.Node {
	for n != nil && n.Kind == yaml.AliasNode {
		n = n.Alias
	}
	return n
}

// join returns the dotted path of part under path ("" for the top level).
func join(path, part string) string {
	if path == "" {
		return part
	}
	return path + "." + part
}
