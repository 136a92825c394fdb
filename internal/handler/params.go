package handler

import (
	"net/http"
	"net/url"
)

// queryParam returns the value of the query parameter name and whether it
// was given, or a 400 when it was given more than once: net/url keeps
// every value, and taking the first without a word would read
// ?count=1&count=3 as count 1 where a proxy or a log that reads the last
// sees 3. Parameters that are lists by design (topic) are read as lists,
// not through this.
func queryParam(q url.Values, name string) (value string, given bool, err error) {
	return oneValue("query parameter", name, q[name])
}

// lastEventID returns the request's Last-Event-ID header, "" without one,
// or a 400 when it is given more than once (see queryParam).
func lastEventID(header http.Header) (string, error) {
	id, _, err := oneValue("header", "Last-Event-ID", header.Values("Last-Event-ID"))
	return id, err
}

// oneValue returns the one value of what name (a query parameter or a
// header), or a 400 naming it when values holds more than one.
func oneValue(what, name string, values []string) (string, bool, error) {
	switch len(values) {
	case 0:
		return "", false, nil
	case 1:
		return values[0], true, nil
	default:
		return "", false, badRequest("%s %s given %d times: give it once", what, name, len(values))
	}
}
