package handler

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"reflect"
	"strconv"
	"strings"

	"github.com/ssehub/ssehub/internal/stream"
)

// maxJSONDepth is how deep encoding/json reads arrays and objects nested
// in one another.
const maxJSONDepth = 10000

// describeJSONError says what is wrong with a JSON request body in the
// client's terms. encoding/json's own texts name Go types and struct
// fields, which clients must not see.
func describeJSONError(err error) string {
	var syntax *json.SyntaxError
	var wrongType *json.UnmarshalTypeError
	switch {
	case errors.As(err, &syntax) && strings.HasSuffix(syntax.Error(), "exceeded max depth"):
		// Valid JSON, past encoding/json's 10000 levels.
		return fmt.Sprintf("JSON nested too deeply (at byte %d): at most %d levels of arrays and objects", syntax.Offset, maxJSONDepth)
	case errors.As(err, &syntax):
		return fmt.Sprintf("not valid JSON (at byte %d)", syntax.Offset)
	case errors.As(err, &wrongType) && wrongType.Field != "":
		return fmt.Sprintf("%q must be %s, not %s", wrongType.Field, jsonKind(wrongType.Type), wrongType.Value)
	case errors.As(err, &wrongType):
		return fmt.Sprintf("want a JSON object, not %s", wrongType.Value)
	case errors.Is(err, io.ErrUnexpectedEOF):
		return "the JSON ends too early"
	case strings.HasPrefix(err.Error(), "json: unknown field "):
		// The name is the client's, quoted by encoding/json: quote at
		// most stream.MaxQuoted bytes of it instead.
		name, uerr := strconv.Unquote(strings.TrimPrefix(err.Error(), "json: unknown field "))
		if uerr != nil {
			return "unknown field"
		}
		return "unknown field " + stream.Quote(name)
	default:
		return "not valid JSON"
	}
}

// jsonKind names the JSON value that decodes into t.
func jsonKind(t reflect.Type) string {
	switch t.Kind() {
	case reflect.String:
		return "a string"
	case reflect.Bool:
		return "true or false"
	case reflect.Slice, reflect.Array:
		return "an array"
	case reflect.Map, reflect.Struct:
		return "an object"
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64,
		reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64,
		reflect.Float32, reflect.Float64:
		return "a number"
	default:
		return "another JSON value"
	}
}
