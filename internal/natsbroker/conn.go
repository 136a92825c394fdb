package natsbroker

import "github.com/nats-io/nats.go"

// The connection's state (Broker.connected) follows its status as nats.go
// changes it, through a status listener (nats.Conn.StatusChanged), which
// nats.go sends to as it changes the status, holding the connection's
// lock. Its handlers (DisconnectErrHandler, ReconnectHandler) run later,
// one at a time on nats.go's one goroutine for callbacks, behind the
// error handler's and the others' work: Ready, set by them, answered nil
// for as long as the callbacks queued before took while the connection
// was already down, and /readyz
// sent traffic to an instance whose publishes answered 503
// (TestReadyFollowsTheConnectionBehindItsHandlers). nats.go's own
// Status, IsConnected and IsClosed wait for the connection's lock, which
// an attempt to connect again holds for as long as a server that took the
// connection says nothing (up to 2 s each): Ready does not ask them.

// followStatus starts following nc's status into b.connected; stopStatus
// ends it. Called once, before anything reads b.connected.
func (b *Broker) followStatus(nc *nats.Conn) {
	ch := nc.StatusChanged(nats.CONNECTED, nats.CONNECTING, nats.RECONNECTING, nats.DISCONNECTED, nats.CLOSED)
	// Read after the listener is in place: a change since is on ch too,
	// and the last one read from it is the status then.
	b.connected.Store(nc.Status() == nats.CONNECTED)
	b.status, b.followed = ch, make(chan struct{})
	go func() {
		defer close(b.followed)
		for s := range ch {
			full := len(ch) == cap(ch)-1 // ch was full: a change may have been dropped
			for more := true; more; {
				select {
				case next, ok := <-ch:
					if !ok {
						more = false
						break
					}
					s = next
				default:
					more = false
				}
			}
			if full && s != nats.CLOSED {
				// nats.go drops a change sent to a full listener:
				// read now, with room in ch for the next one.
				s = nc.Status()
			}
			b.connected.Store(s == nats.CONNECTED)
		}
	}()
}

// stopStatus ends followStatus's goroutine, once the connection is closed.
func (b *Broker) stopStatus() {
	if b.status == nil {
		return
	}
	b.nc.RemoveStatusListener(b.status)
	<-b.followed
}
