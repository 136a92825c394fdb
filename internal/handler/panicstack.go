package handler

import (
	"fmt"
	"runtime/debug"
)

// stackedPanic is a panic recovered (to write an access line, to end a
// stream) and raised again: it keeps the stack of where it was first
// raised, which a panic raised again no longer shows, for the line that
// logs it.
type stackedPanic struct {
	value any
	stack []byte
}

// Error and Unwrap make a panic with an error read as that error: Gin's
// recovery lets a broken connection's (http.ErrAbortHandler, EPIPE,
// ECONNRESET) go without logging or answering it, telling it by its value.
func (p *stackedPanic) Error() string { return fmt.Sprint(p.value) }

func (p *stackedPanic) Unwrap() error {
	err, _ := p.value.(error)
	return err
}

// withStack returns p, recovered in a deferred function, with the stack
// of the panic under way; p as it is when it is nil or has one already.
func withStack(p any) any {
	if _, ok := p.(*stackedPanic); ok || p == nil {
		return p
	}
	return &stackedPanic{value: p, stack: debug.Stack()}
}

// unstack returns what a recovered panic p was raised with, and the
// stack it kept; stack when it kept none.
func unstack(p any, stack []byte) (value any, _ string) {
	if sp, ok := p.(*stackedPanic); ok {
		return sp.value, string(sp.stack)
	}
	return p, string(stack)
}
