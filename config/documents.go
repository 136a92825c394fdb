package config

import (
	"bytes"
	"errors"
	"fmt"
	"io"

	"go.yaml.in/yaml/v3"
)

// checkOneDocument reports a YAML file data that holds more than one
// document (split by ---). Viper reads the first document alone and says
// nothing of the rest, so "server: ...\n---\nauth: ..." started with the
// auth section ignored: subscribing open to all, and a typo in it never
// reported. The error names the line of the first document that would be
// ignored. A --- at the very start only opens the first document. A later
// document that is empty (nothing but comments, as after a lone --- at the
// end) is harmless and allowed; an empty first document followed by one
// with keys is not: viper would read the empty one. A syntax error in a
// later document, which viper never reads, is reported too.
func checkOneDocument(data []byte) error {
	dec := yaml.NewDecoder(bytes.NewReader(data))
	for n := 1; ; n++ {
		var doc yaml.Node
		err := dec.Decode(&doc)
		if errors.Is(err, io.EOF) {
			return nil
		}
		if err != nil {
			return err
		}
		if n > 1 && !emptyDocument(&doc) {
			return fmt.Errorf("a second YAML document starts at line %d (---): ssehub reads only the first document of its file, and would ignore this one; write every key in one document", doc.Line)
		}
	}
}

// emptyDocument reports whether doc holds nothing but comments: YAML reads
// it as a null it was not given.
func emptyDocument(doc *yaml.Node) bool {
	if len(doc.Content) == 0 {
		return true
	}
	c := doc.Content[0]
	return c.Kind == yaml.ScalarNode && c.Tag == "!!null" && c.Value == "" && c.Anchor == ""
}
