package handler

import (
	"net/http"
	"time"

	"github.com/gin-gonic/gin"
)

// attachedWriter writes steps to Gin's ResponseWriter; c.Stream and this
// writer flush each one.
type attachedWriter struct {
	c  *gin.Context
	rc *http.ResponseController
}

func (w *attachedWriter) writeStep(buf *[]byte, _ bool) error {
	if _, err := w.c.Writer.Write((*buf)[headroom:]); err != nil {
		return err
	}
	return w.rc.Flush()
}

func (w *attachedWriter) setWriteDeadline(t time.Time) error {
	return w.rc.SetWriteDeadline(t)
}

// finish leaves the end of the response to net/http.
func (w *attachedWriter) finish() {}
