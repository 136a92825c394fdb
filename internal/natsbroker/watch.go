package natsbroker

import (
	"context"
	"crypto/tls"
	"errors"
	"maps"
	"net"
	"net/url"
	"sync"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// watch asks the connected server for the stream's info every
// PingInterval (leads), and moves the connection to another server
// (nats.go's ForceReconnect) once maxPingsOut questions in a row went
// unanswered or were answered without a leader, while another server
// answers it with one (answeredElsewhere) and this one still does not
// when asked again: the server is cut off from the stream's leader. Such
// a server still answers the connection's pings, so nats.go stays; the
// instance then delivered nothing, each of its publishes waited
// PublishTimeout for a 503, and it said it was ready, for as long as the
// partition lasted (TestClusterServerCutOff). After the move the consumer
// is made again on the new server (live), from the last event it
// delivered: nothing is lost.
//
// The question is the stream's, not the account's: JetStream's account
// info is answered by its meta leader only, so during the meta leader's
// election (6 to 11 s after its crash) every instance of the cluster
// moved, for nothing (TestClusterWatchStaysThroughAMetaElection), and an
// instance next to its one-replica stream left it for a server that
// cannot reach it (TestClusterWatchStaysWithItsStream). A stream's
// replica cut off from its leader answers after about 10 s, with no
// leader. A single server, or a cluster where no server reaches the
// stream's leader, is not left.
//
// It acts only once the question was answered on this Broker: a NATS user
// without permission for the stream's info is never answered, here or
// elsewhere, and is spared the questions to other servers.
//
// A server may reach the stream's leader and hear no meta leader (cut off
// from it, its Raft traffic lost, while its routes to the stream's leader
// are up): it answers the stream's question, and stores the publishes,
// but refuses every consumer's creation as temporarily unavailable
// (10008), for as long as that lasts; an instance whose consumer has to
// be made again there (and cannot be read on) delivers nothing. While the
// consumer is refused so, watch asks a second question
// (askMetaLeader), the account's info, which only the meta leader
// answers, and moves as it does for the first: maxPingsOut in a row
// unanswered here, another server that both reaches the stream's leader
// and hears a meta leader (a cluster electing its meta leader has none),
// and this one unanswered still when asked again
// (TestClusterWatchLeavesAServerWithoutAMetaLeader). It is asked only
// then: every instance asking the meta leader each PingInterval would
// load it for nothing. It returns when Close begins.
func (b *Broker) watch() {
	defer close(b.watched)
	defer b.tends.Wait() // each ends with Close
	tick := time.NewTicker(b.opts.PingInterval)
	defer tick.Stop()
	failed, unmet := 0, 0
	for {
		failed = b.askJetStream(failed)
		unmet = b.askMetaLeader(unmet)
		select {
		case <-b.closed:
			return
		case <-tick.C:
		}
	}
}

// errLeaderless is a stream's info answered without a leader.
var errLeaderless = errors.New("the stream's info names no leader")

// askJetStream is one of watch's questions, with failed questions in a
// row before it; it returns how many have failed in a row after it.
func (b *Broker) askJetStream(failed int) int {
	if !b.nc.IsConnected() {
		return 0
	}
	err := b.askHere()
	switch {
	case err == nil:
		return 0
	case b.jsAnswers.Load() == 0 || errors.Is(err, nats.ErrConnectionClosed):
		return 0
	case failed+1 < maxPingsOut:
		return failed + 1
	}
	b.moveIfElsewhere(err, b.askHere, b.leads,
		"the NATS server does not reach the stream's leader, nor does another",
		"the NATS server does not reach the stream's leader, another does: cut off from its cluster? moving to another server")
	return 0
}

// moveIfElsewhere moves the instance to another server when the server
// it is connected to failed watch's question (err), another answers
// elsewhere, and this one, asked here once more, still does not: an
// election ends on some servers before others, and asked again this one
// may answer now (moved without this, an instance whose server learnt of
// the new leader last left it, 1 run in 3). stays and moves are what the
// log says of each outcome.
func (b *Broker) moveIfElsewhere(err error, here func() error, elsewhere question, stays, moves string) {
	server := b.nc.ConnectedServerName()
	if !b.askedElsewhere(elsewhere) {
		b.opts.Logger.Debug(stays, "server", server, "err", err)
		return
	}
	if err = here(); err == nil || !b.nc.IsConnected() {
		return
	}
	b.opts.Logger.Warn(moves, "server", server, "err", err)
	if err := b.nc.ForceReconnect(); err != nil {
		b.opts.Logger.Debug("nats reconnect", "err", err)
	}
}

// askMetaLeader is watch's second question, asked only while the current
// history's consumer is refused as JetStream being unavailable
// (live.unavailable), with unmet questions in a row before it; it
// returns how many have been unmet in a row after it.
func (b *Broker) askMetaLeader(unmet int) int {
	h := b.cur.Load()
	if h == nil || h.live == nil || !h.live.unavailable.Load() || !b.nc.IsConnected() {
		return 0
	}
	err := b.metaHere()
	switch {
	case err == nil || errors.Is(err, nats.ErrConnectionClosed):
		return 0
	case unmet+1 < maxPingsOut:
		return unmet + 1
	}
	// Not moved once the consumer is made meanwhile.
	here := func() error {
		err := b.metaHere()
		if !h.live.unavailable.Load() {
			return nil
		}
		return err
	}
	b.moveIfElsewhere(err, here, b.leadsWithMeta,
		"the NATS server hears no JetStream meta leader, nor does another that reaches the stream's leader",
		"the NATS server hears no JetStream meta leader, another does: its consumer cannot be made here; moving to another server")
	return 0
}

// metaHere asks the connected server for the account's info, which only
// JetStream's meta leader answers: nil when it was answered.
func (b *Broker) metaHere() error {
	ctx, cancel := context.WithTimeout(context.Background(), b.opts.PingInterval)
	defer cancel()
	return metaLeads(ctx, b.js)
}

// metaLeads returns nil when the server js asks through has JetStream's
// meta leader answer the account's info.
func metaLeads(ctx context.Context, js jetstream.JetStream) error {
	_, err := js.AccountInfo(ctx)
	return err
}

// leadsWithMeta is leads, and metaLeads: the server js asks through
// reaches the stream's leader and hears a meta leader.
func (b *Broker) leadsWithMeta(ctx context.Context, js jetstream.JetStream) error {
	if err := b.leads(ctx, js); err != nil {
		return err
	}
	return metaLeads(ctx, js)
}

// askHere asks the connected server watch's question, and counts its
// answer. A stream that answers as the current history's tells its
// consumer, which JetStream may have refused meanwhile, not to wait out
// its back-off (live.streamAnswers): an instance that does not publish
// had nothing else tell it. The history learns what another instance
// wrote in the stream's metadata (metadata.go), and b writes (tend).
func (b *Broker) askHere() error {
	ctx, cancel := context.WithTimeout(context.Background(), b.opts.PingInterval)
	defer cancel()
	st, err := b.leader(ctx, b.js)
	if err == nil {
		b.jsAnswers.Add(1)
	}
	if h := b.cur.Load(); st != nil && h != nil && h.live != nil && st.CachedInfo().Created.Equal(h.created) {
		h.live.streamAnswers()
		h.learnShared(st.CachedInfo().Config.Metadata)
		b.tend(h, st.CachedInfo())
	}
	return err
}

// tend sets b's limits again on the stream of info, h's, just read by
// watch, when a write of a copy read before undid them (limits.go), and
// writes what h knows in its metadata when the stream no longer holds it
// (shareAgain), on a goroutine of its own that watch waits for as it
// returns: each write waits up to PublishTimeout for NATS, and in watch's
// loop a busy server delayed its next question by up to twice that (a
// move off a server cut off from its cluster as much)
// (TestWatchAsksOnWhileAWriteWaits). One at a time: while one runs, the
// next question's info is not tended, and the one after finds what it
// left undone.
func (b *Broker) tend(h *history, info *jetstream.StreamInfo) {
	if !b.tending.CompareAndSwap(false, true) {
		return
	}
	b.tends.Go(func() {
		defer b.tending.Store(false)
		b.keepLimits(info)
		meta := info.Config.Metadata
		if !h.unshared.Load() && !maps.Equal(h.shared(meta), meta) {
			b.shareAgain(h)
		}
	})
}

// untilClose returns a context that ends when the Broker closes, or
// when cancel is called: for a goroutine of the Broker's own that asks
// NATS for longer than any one client waits.
func (b *Broker) untilClose() (context.Context, context.CancelFunc) {
	ctx, cancel := context.WithCancel(context.Background())
	go func() {
		select {
		case <-b.closed:
			cancel()
		case <-ctx.Done():
		}
	}()
	return ctx, cancel
}

// shareAgain writes in the metadata of h's stream what h knows and it no
// longer holds, until Close: another instance wrote the stream's config
// from a copy read before share wrote it (one that started meanwhile with
// other limits, findStream), and nothing else would write it again. Not
// once share was denied (unshared), nor for a while after a write went
// unanswered (share).
func (b *Broker) shareAgain(h *history) {
	ctx, cancel := b.untilClose()
	defer cancel()
	b.share(ctx, h)
}

// leads returns nil when the server js asks through answers the stream's
// info with a leader, or says the stream is missing (renew's concern, not
// watch's).
func (b *Broker) leads(ctx context.Context, js jetstream.JetStream) error {
	_, err := b.leader(ctx, js)
	return err
}

// leader is leads, with the stream when it was answered with a leader.
func (b *Broker) leader(ctx context.Context, js jetstream.JetStream) (jetstream.Stream, error) {
	st, err := js.Stream(ctx, b.opts.Stream)
	switch {
	case errors.Is(err, jetstream.ErrStreamNotFound):
		return nil, nil
	case err != nil:
		return nil, err
	}
	if c := st.CachedInfo().Cluster; c != nil && c.Leader == "" {
		return nil, errLeaderless
	}
	return st, nil
}

// answeredElsewhere reports whether another server the connection knows
// of (those of Options.URLs, and those its cluster told of) answers
// watch's question, each asked at once on a connection of its own, within
// PingInterval; Close cuts it short.
func (b *Broker) answeredElsewhere() bool { return b.askedElsewhere(b.leads) }

// question is one of watch's: nil when the server js asks through
// answers it.
type question func(ctx context.Context, js jetstream.JetStream) error

// askedElsewhere is answeredElsewhere, for question ask.
func (b *Broker) askedElsewhere(ask question) bool {
	ctx, cancel := context.WithTimeout(context.Background(), b.opts.PingInterval)
	var asks sync.WaitGroup
	defer asks.Wait() // after cancel: each ends with ctx
	defer cancel()
	asks.Go(func() {
		select {
		case <-b.closed:
			cancel()
		case <-ctx.Done():
		}
	})
	here, servers := hostOf(b.nc.ConnectedUrl()), b.nc.Servers()
	answers := make(chan bool, len(servers)) // one for each ask: none waits to send
	n := 0
	for _, server := range servers {
		if hostOf(server) == here {
			continue
		}
		n++
		asks.Go(func() { answers <- b.answersAt(ctx, server, ask) })
	}
	for range n {
		select {
		case ok := <-answers:
			if ok {
				return true
			}
		case <-ctx.Done():
			return false
		}
	}
	return false
}

// answers reports whether the server at url, another than the Broker's,
// answers watch's question before ctx ends, on a connection of its own,
// with the main connection's credentials and CAs. The connection's
// server may be told of by two names (the URL it was given, the address
// its cluster tells of): its own answer does not count. Only url's server
// is asked: nats.go goes on to the servers its INFO told of when its
// handshake fails after it, and another server's answer counted as
// url's (TestClusterWatchProbeAsksOnlyItsServer).
func (b *Broker) answers(ctx context.Context, url string) bool {
	return b.answersAt(ctx, url, b.leads)
}

// answersAt is answers, for question ask.
func (b *Broker) answersAt(ctx context.Context, url string, ask question) bool {
	opts := append([]nats.Option{
		nats.Name("ssehub-check"), nats.NoReconnect(), nats.Timeout(b.opts.PingInterval),
		nats.SetCustomDialer(ctxDialer{ctx}), nats.IgnoreDiscoveredServers(),
	}, b.auth...)
	if name := b.tlsName(url); name != "" {
		opts = append(opts, tlsServerName(name))
	}
	nc, err := nats.Connect(url, opts...)
	if err != nil {
		return false
	}
	defer nc.Close()
	if nc.ConnectedServerName() == b.nc.ConnectedServerName() {
		return false // this Broker's server, by another address
	}
	js, err := jetstream.New(nc)
	return err == nil && ask(ctx, js) == nil
}

// tlsName is the name a TLS certificate is checked against on a
// connection to url, when url's host is an IP address: the host name the
// main connection is connected by, else the first of Options.URLs, as
// nats.go does for the servers a cluster tells of, which it tells of by
// address; else none, and nats.go checks against url's host. Checked
// against the address, a certificate with names only failed, and watch
// never moved. (Set on a connection that turns out not to be TLS, the name
// is unused. The connection's TLS state is not asked: nats.go reads it
// unlocked, racing Close.)
func (b *Broker) tlsName(url string) string {
	if net.ParseIP(hostname(url)) == nil {
		return ""
	}
	for _, u := range append([]string{b.nc.ConnectedUrl()}, b.opts.URLs...) {
		if name := hostname(u); name != "" && net.ParseIP(name) == nil {
			return name
		}
	}
	return ""
}

// hostname is the host of a server's URL, without its port or brackets;
// "" when it does not parse.
func hostname(server string) string {
	u, err := url.Parse(server)
	if err != nil {
		return ""
	}
	return u.Hostname()
}

// tlsServerName has a connection check its server's TLS certificate
// against name.
func tlsServerName(name string) nats.Option {
	return func(o *nats.Options) error {
		cfg := &tls.Config{MinVersion: tls.VersionTLS12}
		if o.TLSConfig != nil {
			cfg = o.TLSConfig.Clone()
		}
		cfg.ServerName = name
		o.TLSConfig = cfg
		return nil
	}
}

// ctxDialer dials until its context ends.
type ctxDialer struct{ ctx context.Context }

func (d ctxDialer) Dial(network, address string) (net.Conn, error) {
	var dialer net.Dialer
	return dialer.DialContext(d.ctx, network, address)
}

// hostOf is the host:port of a server's URL.
func hostOf(server string) string {
	u, err := url.Parse(server)
	if err != nil {
		return server
	}
	return u.Host
}

// redacted returns server, a NATS URL, with the secrets it may hold
// masked, for a log line: its user info's, a password, as url.URL's
// Redacted (and nats.go's ConnectedUrlRedacted) masks it, and a token, a
// user name without a password as NATS reads one (authOptions), which
// they leave; and its query's values, as a proxy in front of a WebSocket
// NATS may take a token there (?token=...).
func redacted(server string) string {
	u, err := url.Parse(server)
	if err != nil {
		return "" // nats.go's URLs parse
	}
	if u.RawQuery != "" {
		q := u.Query()
		for name := range q {
			q[name] = []string{"xxxxx"}
		}
		u.RawQuery = q.Encode()
	}
	if u.User == nil {
		return u.String()
	}
	if _, ok := u.User.Password(); ok {
		return u.Redacted()
	}
	u.User = url.User("xxxxx")
	return u.String()
}

// secureOptions are the credentials file and the CAs of opts, for every
// connection.
func secureOptions(opts *Options) []nats.Option {
	var secure []nats.Option
	if opts.CredentialsFile != "" {
		secure = append(secure, nats.UserCredentials(opts.CredentialsFile))
	}
	if opts.CAFile != "" {
		secure = append(secure, nats.RootCAs(opts.CAFile))
	}
	return secure
}

// authOptions are the credentials and CAs of opts for a connection of
// its own: secureOptions, and the user and password (or token) of the
// first URL that has them. nats.go's list of servers drops them from the
// URLs.
func authOptions(opts *Options) []nats.Option {
	auth := secureOptions(opts)
	for _, s := range opts.URLs {
		u, err := url.Parse(s)
		if err != nil || u.User == nil {
			continue
		}
		if password, ok := u.User.Password(); ok {
			return append(auth, nats.UserInfo(u.User.Username(), password))
		}
		return append(auth, nats.Token(u.User.Username()))
	}
	return auth
}
