package config

import (
	"fmt"
	"strings"

	"go.yaml.in/yaml/v3"
)

// keyLines returns the line, counted from 1, at which the YAML file data
// writes each key, by its dotted name in lower case as viper names it
// ("server.tls.cert_file"), and each item of a list, by the name an error
// of it has ("cors.allowed_origins[1]"): an error of a value a file set
// names its line, which a file of 200 lines needs. A key a merge (<<:
// *anchor) brings is at the line of the anchored mapping's. A file that
// does not parse has none.
func keyLines(data []byte) map[string]int {
	var doc yaml.Node
	if yaml.Unmarshal(data, &doc) != nil || len(doc.Content) == 0 {
		return nil
	}
	lines := map[string]int{}
	var walk func(n *yaml.Node, path string)
	walk = func(n *yaml.Node, path string) {
		for _, kv := range entries(n) {
			key := join(path, strings.ToLower(keyText(kv[0])))
			// A dotted key (level.x:) writes each key its name holds.
			for i, c := range key {
				if c == '.' && i > len(path) {
					if _, ok := lines[key[:i]]; !ok {
						lines[key[:i]] = kv[0].Line
					}
				}
			}
			if _, ok := lines[key]; !ok {
				lines[key] = kv[0].Line
			}
			if v := kv[1]; v != nil && v.Kind == yaml.SequenceNode {
				for i, item := range v.Content {
					lines[fmt.Sprintf("%s[%d]", key, i)] = item.Line
				}
			}
			walk(kv[1], key)
		}
	}
	walk(doc.Content[0], "")
	return lines
}

// keyText returns the name viper gives the key node k: what it writes,
// or, for a key YAML reads as no text, its value as viper prints it
// (0x1F is "31", 1.50 "1.5", a date a time, null ""), else an error of
// such a key named the line of its section.
func keyText(k *yaml.Node) string {
	if k.Kind != yaml.ScalarNode || k.ShortTag() == "!!str" {
		return k.Value
	}
	var v any
	if k.Decode(&v) != nil {
		return k.Value
	}
	if v == nil {
		return ""
	}
	return fmt.Sprint(v)
}
