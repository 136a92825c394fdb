// hub-client.js: the Hub panel's logic, without Vue, so node can test it.
//
// HubConnection subscribes to topics over GET api/v1/events with the fetch
// client in sse-client.js and keeps the last event id it has seen, so a
// connection that drops, or that the page drops on purpose, resumes with
// Last-Event-ID and misses nothing. A connection that stays silent past
// the hub's heartbeat (a laptop that slept, a NAT that forgot it) is cut and
// resumed the same way. publish POSTs one event to a topic.

import { DEFAULT_RETRY_MS, SSEResponseError, fetchEventSource, reconnectDelay } from "./sse-client.js";

/**
 * The hub's heartbeat interval that the page assumes: ssehub's default
 * stream.heartbeat_interval. A stream does not say its own, so the page
 * cannot learn a configured one.
 */
export const HUB_HEARTBEAT_MS = 15_000;

/**
 * HubConnection's default idleTimeout: two and a half heartbeats. A live
 * stream is never silent for longer than one heartbeat interval and the
 * heartbeat grid's lateness (at most 250 ms), so this cuts only a dead
 * connection, and leaves room for one heartbeat lost on the way. A hub
 * configured with a longer heartbeat needs a longer idleTimeout, or idle
 * streams are cut and resumed every 37.5 s.
 */
export const HUB_IDLE_TIMEOUT_MS = 2.5 * HUB_HEARTBEAT_MS;

/**
 * The comment that opens the stand-in stream a proxy answers with while the
 * hub is out of reach (the README's nginx recipe): an event stream of this
 * comment and a retry: field, which ends at once. EventSource ignores the
 * comment; HubConnection shows the state "unreachable" for it, not "open".
 */
export const UNREACHABLE_COMMENT = "ssehub is unreachable";

/**
 * parseTopics splits the text of the topics field, patterns separated by
 * commas or white space, into a list without empty items or duplicates.
 * @param {string} text
 * @returns {string[]}
 */
export function parseTopics(text) {
  return [...new Set(text.split(/[\s,]+/).filter((t) => t !== ""))];
}

/**
 * subscribeURL is the URL of a subscription to topics on the hub at base
 * (the page's own URL for the same origin). A lastEventId is sent as the
 * last_event_id query: the way a page's first connect resumes from an id it
 * stored; a Last-Event-ID header, when sent, takes precedence over it.
 * @param {string | URL} base
 * @param {string[]} topics
 * @param {object} [options]
 * @param {string} [options.lastEventId]
 * @returns {URL}
 */
export function subscribeURL(base, topics, { lastEventId = "" } = {}) {
  const url = new URL("api/v1/events", base);
  for (const t of topics) url.searchParams.append("topic", t);
  if (lastEventId !== "") url.searchParams.set("last_event_id", lastEventId);
  return url;
}

/**
 * publishURL is the URL that publishes to topic on the hub at base.
 * @param {string | URL} base
 * @param {string} topic
 * @returns {URL}
 */
export function publishURL(base, topic) {
  return new URL(`api/v1/topics/${encodeURIComponent(topic)}/events`, base);
}

/**
 * publishBody is the JSON body of a publish request. Text that parses as
 * JSON is sent as that JSON value, as typed but for the white space between
 * its tokens (a number keeps its digits, even beyond what a JavaScript
 * number holds), any other text as a JSON string; an empty event name is
 * left out.
 * @param {string} event
 * @param {string} text
 * @returns {string}
 */
export function publishBody(event, text) {
  let data;
  try {
    JSON.parse(text);
    data = compactJSON(text);
  } catch {
    data = JSON.stringify(text);
  }
  const head = event === "" ? "" : `"event":${JSON.stringify(event)},`;
  return `{${head}"data":${data}}`;
}

// compactJSON removes the white space between the tokens of text, valid
// JSON, without parsing its values.
function compactJSON(text) {
  let out = "";
  let inString = false;
  for (let i = 0; i < text.length; i++) {
    const c = text[i];
    if (inString) {
      out += c;
      if (c === "\\") out += text[++i];
      else if (c === '"') inString = false;
    } else if (c === '"') {
      inString = true;
      out += c;
    } else if (c !== " " && c !== "\t" && c !== "\n" && c !== "\r") {
      out += c;
    }
  }
  return out;
}

/**
 * publish sends one event to topic. It resolves to {ok: true, id, topic}
 * for a 201 answer, else to {ok: false, status, error} with the server's
 * error text (or the status text when the body is not a JSON error). It
 * rejects only when fetch fails (network, CORS): with fetch's TypeError,
 * whose noAnswer is true when no answer came (the body's failure is not).
 * @param {string | URL} base
 * @param {object} request
 * @param {string} request.topic
 * @param {string} request.token sent as Authorization: Bearer when not empty.
 * @param {string} [request.event]
 * @param {string} request.data the text of the data field (see publishBody).
 * @param {AbortSignal} [request.signal] aborts the request: publish rejects
 *   with its reason.
 * @returns {Promise<{ok: boolean, id?: string, topic?: string, status?: number, error?: string}>}
 */
export async function publish(base, { topic, token, event = "", data, signal }) {
  const headers = { "Content-Type": "application/json" };
  if (token !== "") headers.Authorization = `Bearer ${token}`;
  const response = await fetch(publishURL(base, topic), {
    method: "POST",
    headers,
    body: publishBody(event, data),
    cache: "no-store",
    signal,
  }).catch((err) => {
    // No answer the page may read (network or CORS): the browser's error,
    // marked so, for a caller to find out which.
    if (err?.name === "TypeError") err.noAnswer = true;
    throw err;
  });
  let body = null;
  try {
    body = JSON.parse(await response.text());
  } catch {
    // Not JSON: the status says enough; unless the body was cut short.
    signal?.throwIfAborted();
  }
  if (response.status === 201 && body && typeof body.id === "string") {
    return { ok: true, id: body.id, topic: body.topic };
  }
  const error = body && typeof body.error === "string" ? body.error : response.statusText;
  return { ok: false, status: response.status, error };
}

/**
 * HubConnection is one subscription to a list of topic patterns that
 * reconnects and resumes. It is driven from the page's one thread; its
 * callbacks run there too.
 *
 * States: idle, connecting, open, reconnecting (waiting to connect again,
 * after a drop, the server's end of a stream, or a silence longer than
 * idleTimeout), closed, expired (the token's time is up: connect again
 * with a fresh one, and the stream resumes after the last event id), and
 * "error: <msg>" for an answer that is not a stream (a 400 for a bad topic,
 * a 401, a 403 for a topic the token does not grant), and unreachable:
 * the hub is out of reach, and a proxy answered for it with a stream that
 * begins with the comment UNREACHABLE_COMMENT; the connection tries again
 * after the stand-in's retry: time, backing off for stand-ins in a row as
 * for failed attempts, up to DEFAULT_RETRY_MS or that time, whichever is
 * longer (onDisconnect tells each wait), and is "open" again once a stream says
 * anything else (an event, an id, a retry: field, a heartbeat). While
 * unreachable, an answer is not called open until it says which it is.
 */
export class HubConnection {
  /**
   * @param {object} options
   * @param {string | URL} options.base the hub's base URL (the page's URL).
   * @param {string[]} options.topics
   * @param {string} [options.token] a subscribe token or a JWT, sent as Authorization: Bearer.
   * @param {string} [options.lastEventId] an id stored by an earlier page:
   *   the first connect resumes after it with the last_event_id query.
   * @param {(state: string) => void} [options.onState]
   * @param {(ev: {id: string, type: string, data: string}) => void} [options.onEvent]
   *   every event but reset, in order.
   * @param {(reason: string) => void} [options.onReset] the hub could not resume
   *   from the id sent: events may have been missed.
   * @param {(id: string) => void} [options.onResume] a connection opened that
   *   sent id as the last event id.
   * @param {(id: string) => void} [options.onLastEventId] the last event id changed.
   * @param {(ms: number) => void} [options.onRetry] the server set its retry time.
   * @param {(time: string) => void} [options.onExpired] the server ended the
   *   stream because the token expired at time (RFC 3339); the connection
   *   does not reconnect with that token.
   * @param {(e: {status: number, error: string}) => void} [options.onError]
   *   an answer that was not a stream: its status and the server's reason
   *   (for a 403, the topic the token does not grant).
   * @param {(error: Error | null, delayMs: number) => void} [options.onDisconnect]
   *   the connection will try again in delayMs: error is why the last
   *   attempt failed (a network error, which is also what a CORS refusal
   *   looks like, a "not now" answer, the idle timeout), null when the
   *   stream ended.
   * @param {number} [options.idleTimeout] the longest silence, in ms, before
   *   the connection is cut and resumed; HUB_IDLE_TIMEOUT_MS by default, 0
   *   for none.
   * @param {number} [options.jitter] the random spread added to each
   *   reconnect delay, drop()'s included, as in fetchEventSource; 0 for none.
   */
  constructor(options) {
    this._options = options;
    this._lastEventId = options.lastEventId ?? "";
    this._retryMs = DEFAULT_RETRY_MS;
    this._state = "idle";
    this._run = null; // the AbortController of the running fetchEventSource
    this._timer = null; // the reconnect timer after drop()
    this._unreachable = false; // the last stream was a proxy's stand-in
    this._standIns = 0; // stand-ins in a row: their back-off
  }

  /** The state, as described on the class. */
  get state() {
    return this._state;
  }

  /** The id of the last event received, "" before any. */
  get lastEventId() {
    return this._lastEventId;
  }

  /** The delay drop() waits before resuming, before its jitter: the server's retry: time. */
  get retryMs() {
    return this._retryMs;
  }

  /**
   * connect opens the subscription, resuming after the last event id if
   * there is one: the first connect sends it as the last_event_id query
   * (the id a page stored), later ones as the Last-Event-ID header.
   */
  connect() {
    const first = this._run === null;
    this._stop();
    this._standIns = 0;
    this._start(first);
  }

  /**
   * drop aborts the current connection, as a network failure would, keeps
   * the last event id and reconnects with it after the server's retry
   * time and its jitter, or at once on resume().
   */
  drop() {
    if (this._state !== "open" && this._state !== "connecting") return;
    this._stop();
    this._setState("reconnecting");
    const wait = reconnectDelay({ retryMs: this._retryMs, jitter: this._options.jitter });
    this._timer = setTimeout(() => this.resume(), Math.min(wait, 2 ** 31 - 1));
  }

  /**
   * resume reconnects now with the last event id, after a drop or while
   * reconnecting or unreachable.
   */
  resume() {
    if (this._state !== "reconnecting" && this._state !== "unreachable") return;
    this._stop();
    this._start(false);
  }

  /** close ends the subscription for good. The last event id is kept. */
  close() {
    this._stop();
    this._setState("closed");
  }

  // _stop aborts the running connection and the reconnect timer.
  _stop() {
    clearTimeout(this._timer);
    this._timer = null;
    this._run?.abort();
  }

  // _start runs fetchEventSource until it ends, fails or is stopped. With
  // inQuery, the last event id goes in the URL (a page's first connect).
  // With quiet, the state is left as it is until the answer says which it
  // is (a stand-in's next attempt).
  _start(inQuery, quiet = false) {
    const o = this._options;
    const run = new AbortController();
    this._run = run;
    const mine = () => this._run === run;
    const url = subscribeURL(o.base, o.topics, { lastEventId: inQuery ? this._lastEventId : "" });
    const headers = {};
    if (o.token) headers.Authorization = `Bearer ${o.token}`;
    if (!quiet) this._setState("connecting");
    // opened: this attempt's stream is open and shown as such; told: it has
    // said its first thing, the stand-in's comment or anything else;
    // standIn: it was a stand-in.
    let opened = false;
    let told = true;
    let standIn = false;
    const open = () => {
      if (opened) return;
      opened = true;
      this._setState("open");
      // What this request sent: the header, else the query; both hold
      // the last id seen, since the parser and this object see the same
      // events.
      if (this._lastEventId !== "") o.onResume?.(this._lastEventId);
    };
    const tell = (isStandIn) => {
      if (told) return;
      told = true;
      this._unreachable = isStandIn;
      standIn = isStandIn;
      if (isStandIn) this._setState("unreachable");
      else {
        this._standIns = 0;
        open();
      }
    };
    fetchEventSource(url, {
      headers,
      signal: run.signal,
      reconnect: true,
      retryDelay: this._retryMs,
      idleTimeout: o.idleTimeout ?? HUB_IDLE_TIMEOUT_MS,
      jitter: o.jitter,
      lastEventId: inQuery ? "" : this._lastEventId,
      onOpen: () => {
        if (!mine()) return;
        opened = false;
        told = false;
        standIn = false;
        // After a stand-in, this answer may be another one: it is open
        // once it says something else.
        if (!this._unreachable) open();
      },
      onComment: (text) => {
        if (mine()) tell(text === UNREACHABLE_COMMENT);
      },
      // Every id the stream gives, an event's or its position alone (a
      // live-only stream's first frame, a reset's id): what to resume from.
      onLastEventId: (id) => {
        if (!mine()) return;
        tell(false);
        if (id === this._lastEventId) return;
        this._lastEventId = id;
        o.onLastEventId?.(id);
      },
      onEvent: (ev) => {
        if (!mine()) return;
        tell(false);
        if (ev.type === "position") return; // its id is all it says: onLastEventId has it
        if (ev.type === "reset") {
          o.onReset?.(ev.data);
          return;
        }
        if (ev.type === "expired") {
          // The stream's last event: reconnecting with the same token
          // would only be refused.
          this._stop();
          this._setState("expired");
          o.onExpired?.(ev.data);
          return;
        }
        o.onEvent?.({ id: ev.lastEventId, type: ev.type, data: ev.data });
      },
      onRetry: (ms) => {
        if (!mine()) return;
        tell(false);
        this._retryMs = ms;
        o.onRetry?.(ms);
      },
      onDisconnect: (error, delayMs) => {
        if (!mine()) return;
        let wait = delayMs;
        if (standIn) {
          // A stand-in says something, so fetchEventSource would try
          // again after its retry: alone, at once for a retry: 0: stand-ins
          // in a row back off as failed attempts do, to DEFAULT_RETRY_MS
          // (or the retry: time, when longer), so the hub is seen back
          // within that.
          this._standIns++;
          wait = reconnectDelay({
            retryMs: this._retryMs,
            failures: this._standIns,
            maxMs: Math.max(this._retryMs, DEFAULT_RETRY_MS),
            jitter: o.jitter,
          });
          this._stop();
          this._timer = setTimeout(() => this._start(false, true), Math.min(wait, 2 ** 31 - 1));
        }
        this._setState(this._unreachable ? "unreachable" : "reconnecting");
        o.onDisconnect?.(error, wait);
      },
    }).then(
      () => {
        // A 204 answer: the server ended the stream for good.
        if (mine() && !run.signal.aborted) this._setState("closed");
      },
      (err) => {
        if (!mine() || run.signal.aborted) return;
        this._setState(`error: ${err.message}`);
        if (err instanceof SSEResponseError) o.onError?.({ status: err.status, error: err.serverError || err.message });
      },
    );
  }

  _setState(state) {
    this._state = state;
    this._options.onState?.(state);
  }
}
