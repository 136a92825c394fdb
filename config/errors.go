package config

import (
	"errors"
	"fmt"
	"strings"

	"github.com/spf13/pflag"
)

// Errors returned by Load and Validate, always wrapped with context.
var (
	// ErrUnknownKey reports a key in the YAML file that ssehub does not know,
	// usually a typo.
	ErrUnknownKey = errors.New("unknown key")
	// ErrDuplicateKey reports a key the YAML file writes twice, in two
	// spellings (another case, or dotted and nested), of which only one
	// would be read.
	ErrDuplicateKey = errors.New("duplicate key")
	// ErrInvalidValue reports a value that does not parse or is out of range.
	ErrInvalidValue = errors.New("invalid value")
	// ErrConfigFile reports a YAML file that cannot be read or parsed, or
	// the problems of the values it sets.
	ErrConfigFile = errors.New("config file")
	// ErrUsage reports bad command-line arguments.
	ErrUsage = errors.New("bad command line")
)

// KeyError reports a problem with one configuration key. Its message is
// "key: problem", with "; set by SOURCE" after it when the value came from
// an environment variable or a flag, and "; other.key set by SOURCE" for
// each other key the problem names that one set; the problem quotes the
// offending value (tokens are never quoted: they are secrets). It wraps
// ErrUnknownKey, ErrDuplicateKey or ErrInvalidValue.
type KeyError struct {
	Key    string   // dotted key, e.g. "stream.retry"
	Source string   // the variable or flag that set it ("SSEHUB_STREAM_RETRY", "--addr"); empty for the file
	Msg    string   // what is wrong, naming the value
	Err    error    // ErrUnknownKey, ErrDuplicateKey or ErrInvalidValue
	Others []string // other keys whose values make the problem, named in Msg

	othersSetBy []string // "other.key set by SOURCE", for those of Others a variable or flag set
	// at is the key, as keyLines names it, whose line an error of the
	// file names when it is not Key's: a list's item ("key[1]"), or an
	// unknown key whose name is not shown.
	at string
}

// Error returns "key: problem", or "key: problem; set by SOURCE", then
// "; other.key set by SOURCE" for the other keys a variable or flag set.
func (e *KeyError) Error() string {
	s := e.Msg
	if e.Key != "" {
		s = e.Key + ": " + s
	}
	if e.Source != "" {
		s += "; set by " + e.Source
	}
	for _, o := range e.othersSetBy {
		s += "; " + o
	}
	return s
}

// nameSources sets the Source of every *KeyError in err, joined or not,
// whose key (a list's, for "key[i]") sources names, and names the sources
// of its Others.
func nameSources(err error, sources map[string]string) {
	if joined, ok := err.(interface{ Unwrap() []error }); ok {
		for _, e := range joined.Unwrap() {
			nameSources(e, sources)
		}
		return
	}
	var ke *KeyError
	if errors.As(err, &ke) {
		if key, _, _ := strings.Cut(ke.Key, "["); sources[key] != "" {
			ke.Source = sources[key]
		}
		for _, o := range ke.Others {
			if sources[o] != "" {
				ke.othersSetBy = append(ke.othersSetBy, o+" set by "+sources[o])
			}
		}
	}
}

// Unwrap returns the sentinel the error wraps.
func (e *KeyError) Unwrap() error { return e.Err }

// invalid returns a KeyError wrapping ErrInvalidValue.
func invalid(key, msg string) *KeyError {
	return &KeyError{Key: key, Msg: msg, Err: ErrInvalidValue}
}

// invalidItem returns a KeyError wrapping ErrInvalidValue for the item at
// index i of the list key: the message names the key alone, as the item's
// value is in msg, and an error of the file names the item's line.
func invalidItem(key string, i int, msg string) *KeyError {
	return &KeyError{Key: key, Msg: msg, Err: ErrInvalidValue, at: fmt.Sprintf("%s[%d]", key, i)}
}

// with returns e naming others, the other keys whose values make its
// problem, so that the variables or flags that set them are named too.
func (e *KeyError) with(others ...string) *KeyError {
	e.Others = others
	return e
}

// HelpError is returned by Load when the arguments ask for help (-h or
// --help). It wraps pflag.ErrHelp, so errors.Is(err, pflag.ErrHelp) holds;
// take the text to print with errors.As:
//
//	var help *config.HelpError
//	if errors.As(err, &help) {
//		fmt.Fprint(os.Stdout, help.Usage)
//		return 0
//	}
type HelpError struct {
	Usage string // the full usage text, ending in a newline
}

// Error returns pflag's "help requested" message.
func (e *HelpError) Error() string { return pflag.ErrHelp.Error() }

// Unwrap returns pflag.ErrHelp.
func (e *HelpError) Unwrap() error { return pflag.ErrHelp }
