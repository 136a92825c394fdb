// sse-client.js: a Server-Sent Events client for fetch, as an ES module.
//
// EventStreamParser turns the text of an event stream into events, one chunk
// at a time, following the WHATWG HTML rules for "interpreting an event
// stream": a chunk may end anywhere, in the middle of a line, between the CR
// and the LF of a CRLF, or in the middle of a UTF-8 sequence (write() decodes
// bytes with TextDecoder in streaming mode).
//
// fetchEventSource reads a fetch response through the parser, so a page can
// stream from a POST with a JSON body or custom headers, which EventSource
// cannot do. With reconnect: true it also resumes like EventSource: it waits
// the server's retry: time and reconnects with a Last-Event-ID header. Unlike
// EventSource it spreads reconnects out (jitter), backs off while attempts
// keep failing, and can cut a connection that has gone silent (idleTimeout).

/** The reconnection delay, in milliseconds, used until the server sends retry:. */
export const DEFAULT_RETRY_MS = 3000;

/**
 * The default jitter: each reconnect waits its delay plus up to half of it
 * again, chosen at random, so clients dropped together do not all come back
 * in the same millisecond.
 */
export const DEFAULT_JITTER = 0.5;

/** The default cap, in milliseconds, of the back-off for failed attempts in a row. */
export const DEFAULT_MAX_RETRY_MS = 60_000;

const BOM = "\uFEFF";
const DIGITS = /^[0-9]+$/;

/**
 * EventStreamParser is an incremental event-stream parser. Feed it text with
 * feed() (or bytes with write(), never both on one parser) and call end() when
 * the stream ends. Callbacks run synchronously from feed, write and end.
 *
 * Events are plain objects { type, data, lastEventId }, like the MessageEvent
 * that EventSource dispatches: type is the event: field or "message", data has
 * its trailing LF removed, lastEventId is the last id: seen on this or an
 * earlier connection (ids persist from event to event until changed).
 */
export class EventStreamParser {
  /**
   * @param {object} [options]
   * @param {(ev: {type: string, data: string, lastEventId: string}) => void} [options.onEvent]
   *   called for every dispatched event.
   * @param {(text: string) => void} [options.onComment] called for every comment
   *   line (a line starting with ":"), with the text after the colon and one
   *   leading space removed.
   * @param {(ms: number) => void} [options.onRetry] called for every valid retry:
   *   field (digits only) with the reconnection time in milliseconds.
   * @param {string} [options.lastEventId] the last event id from an earlier
   *   connection, used until the stream sets another.
   * @param {(id: string) => void} [options.onLastEventId] called when a blank
   *   line changes the last event id, before its event, if any, is
   *   dispatched: also for a frame of an id alone, which dispatches nothing
   *   (a server's way to give a position before any event).
   */
  constructor({ onEvent, onComment, onRetry, onLastEventId, lastEventId = "" } = {}) {
    this.onEvent = onEvent;
    this.onComment = onComment;
    this.onRetry = onRetry;
    this.onLastEventId = onLastEventId;
    this._lastEventId = lastEventId;
    this._decoder = null;
    this._reset();
  }

  /** The last event id string: what a reconnect sends as Last-Event-ID. */
  get lastEventId() {
    return this._lastEventId;
  }

  /**
   * feed parses the next chunk of decoded text. A line is processed as soon as
   * its end is seen; the rest waits for the next chunk.
   * @param {string} text
   */
  feed(text) {
    if (text === "") return;
    if (this._atStart) {
      this._atStart = false;
      if (text[0] === BOM) text = text.slice(1);
    }
    if (this._afterCR) {
      this._afterCR = false;
      if (text[0] === "\n") text = text.slice(1);
    }
    // cr and lf hold the next CR and LF at or after start, -1 when there is none.
    let start = 0;
    let cr = text.indexOf("\r");
    let lf = text.indexOf("\n");
    while (cr !== -1 || lf !== -1) {
      let end = lf;
      let next = lf + 1;
      if (cr !== -1 && (lf === -1 || cr < lf)) {
        end = cr;
        if (lf === cr + 1) {
          next = cr + 2;
        } else {
          next = cr + 1;
          // A CR that ends the chunk may be the first half of a CRLF.
          if (next === text.length) this._afterCR = true;
        }
      }
      const piece = text.slice(start, end);
      const line = this._partial === "" ? piece : this._partial + piece;
      this._partial = "";
      start = next;
      if (cr !== -1 && cr < start) cr = text.indexOf("\r", start);
      if (lf !== -1 && lf < start) lf = text.indexOf("\n", start);
      this._line(line);
    }
    if (start < text.length) this._partial += text.slice(start);
  }

  /**
   * write decodes the next chunk of UTF-8 bytes and parses it. A multi-byte
   * character split between two chunks is decoded whole.
   * @param {Uint8Array} bytes
   */
  write(bytes) {
    // ignoreBOM keeps a leading BOM in the text, so feed strips exactly one.
    this._decoder ??= new TextDecoder("utf-8", { ignoreBOM: true });
    this.feed(this._decoder.decode(bytes, { stream: true }));
  }

  /**
   * end marks the end of the stream: an incomplete line or event is
   * discarded, as the spec requires, and the parser is ready for the stream
   * of the next connection. The last event id is kept.
   */
  end() {
    if (this._decoder !== null) {
      this.feed(this._decoder.decode());
      this._decoder = null;
    }
    this._reset();
  }

  _reset() {
    this._atStart = true;
    this._afterCR = false;
    this._partial = "";
    this._data = "";
    this._type = "";
    // Browsers start each connection's id buffer at the current last event id.
    this._idBuffer = this._lastEventId;
  }

  _line(line) {
    if (line === "") {
      this._dispatch();
      return;
    }
    const colon = line.indexOf(":");
    if (colon === 0) {
      if (this.onComment) this.onComment(stripSpace(line.slice(1)));
      return;
    }
    if (colon < 0) {
      this._field(line, "");
    } else {
      this._field(line.slice(0, colon), stripSpace(line.slice(colon + 1)));
    }
  }

  _field(name, value) {
    switch (name) {
      case "event":
        this._type = value;
        break;
      case "data":
        this._data += value + "\n";
        break;
      case "id":
        if (!value.includes("\0")) this._idBuffer = value;
        break;
      case "retry":
        if (DIGITS.test(value) && this.onRetry) this.onRetry(parseInt(value, 10));
        break;
      default:
      // Other field names are ignored.
    }
  }

  _dispatch() {
    if (this._lastEventId !== this._idBuffer) {
      this._lastEventId = this._idBuffer;
      if (this.onLastEventId) this.onLastEventId(this._lastEventId);
    }
    const data = this._data;
    const type = this._type;
    this._data = "";
    this._type = "";
    if (data === "") return;
    const ev = { type: type || "message", data: data.slice(0, -1), lastEventId: this._lastEventId };
    if (this.onEvent) this.onEvent(ev);
  }
}

function stripSpace(value) {
  return value[0] === " " ? value.slice(1) : value;
}

/**
 * SSEResponseError is thrown by fetchEventSource for an answer that is not an
 * event stream: a non-2xx status or another content type. Its message holds
 * the status and, when the body is JSON with an "error" field, that text
 * (read for ERROR_BODY_TIMEOUT_MS and ERROR_BODY_MAX_BYTES at most).
 */
export class SSEResponseError extends Error {
  /**
   * @param {string} message
   * @param {number} status the HTTP status code.
   * @param {string} [serverError] the JSON body's "error" field, if any.
   */
  constructor(message, status, serverError = "") {
    super(message);
    this.name = "SSEResponseError";
    this.status = status;
    this.serverError = serverError;
  }
}

/**
 * fetchEventSource requests url with fetch and reads the answer as an event
 * stream, calling onEvent for each event.
 *
 * Without reconnect, the returned promise resolves when the stream ends. With
 * reconnect: true, a stream that ends or drops (network error) is opened
 * again after a delay (see reconnectDelay), with a Last-Event-ID header,
 * until the signal aborts; onDisconnect sees each drop. So is an answer that
 * says "not now" (429, 502, 503, 504), onDisconnect seeing its
 * SSEResponseError; its Retry-After is a lower bound of the delay. A 204
 * answer ends the stream for good, as it stops EventSource.
 *
 * The delay is the retry time (retryDelay, then the server's retry:) after a
 * stream that was open; each further attempt in a row that fails to open a
 * stream (a network error or a "not now" answer), or whose stream ends
 * before it says anything but retry: (no event, id or comment), doubles
 * it, up to maxRetryDelay (or the retry time, when that is longer); a
 * stream that says something resets it. A random spread of up to jitter times the delay is added to
 * every wait.
 *
 * With idleTimeout, an attempt that receives no bytes for that long (no
 * answer, no event, no comment: a server's heartbeat comments count) is
 * aborted, as a half-open connection never ends by itself: with reconnect,
 * as any drop, with a "TimeoutError" DOMException.
 *
 * The promise rejects with the browser's own error when fetch fails (network
 * or CORS: "TypeError: Failed to fetch") and reconnect is off, with fetch's
 * TypeError, reconnect or not, for a request it refuses to make (a GET with
 * a body, a URL that does not parse), with the
 * signal's reason (an AbortError) when aborted, with a "TimeoutError"
 * DOMException when idleTimeout cuts the stream and reconnect is off, with an
 * SSEResponseError for a non-2xx status (one that says "not now" only without
 * reconnect) or a content type other than text/event-stream, and with
 * whatever a callback throws. It resolves to the last event id. Once it has
 * settled, it has no timer left running.
 *
 * @param {string | URL} url
 * @param {object} [options]
 * @param {string} [options.method] "GET" by default.
 * @param {HeadersInit} [options.headers] sent on every request; Accept
 *   defaults to text/event-stream.
 * @param {BodyInit} [options.body] must be reusable (a string) when reconnecting.
 * @param {RequestCredentials} [options.credentials]
 * @param {AbortSignal} [options.signal] aborts the request, the read and the wait.
 * @param {(response: Response) => void} [options.onOpen] called once per
 *   connection, when an event-stream response arrives, before any event.
 * @param {(ev: {type: string, data: string, lastEventId: string}) => void} [options.onEvent]
 * @param {(text: string) => void} [options.onComment]
 * @param {(ms: number) => void} [options.onRetry] called when the server sets retry:.
 * @param {(id: string) => void} [options.onLastEventId] called when the stream
 *   changes the last event id, an id-only frame included (see EventStreamParser).
 * @param {(error: Error | null, delayMs: number) => void} [options.onDisconnect]
 *   with reconnect: called before each wait, with the wait; error is null for
 *   a clean end.
 * @param {string} [options.lastEventId] sent as Last-Event-ID on the first request too.
 * @param {boolean} [options.reconnect] false by default.
 * @param {number} [options.retryDelay] the retry time until the server sends
 *   retry:; DEFAULT_RETRY_MS by default.
 * @param {number} [options.maxRetryDelay] the cap of the back-off, in ms;
 *   DEFAULT_MAX_RETRY_MS by default.
 * @param {number} [options.jitter] the largest random spread added to each
 *   wait, as a fraction of it; DEFAULT_JITTER by default, 0 for exact waits.
 * @param {() => number} [options.random] the source of the spread, a number
 *   in [0, 1); Math.random by default (tests pass their own).
 * @param {number} [options.idleTimeout] the longest silence, in ms, before
 *   an attempt is aborted; 0 (the default) waits forever. Set it above the
 *   server's heartbeat interval, with room for a late heartbeat.
 * @returns {Promise<string>}
 */
export async function fetchEventSource(url, options = {}) {
  const { signal, reconnect = false, onRetry, onDisconnect } = options;
  let retryMs = options.retryDelay ?? DEFAULT_RETRY_MS;
  // failures counts the attempts in a row that did not open a stream, or
  // whose stream said nothing but retry:. heard is whether this attempt's
  // stream said anything else: an event, an id, a comment.
  let failures = 0;
  let heard = false;
  const hear = (callback) => (value) => {
    heard = true;
    if (callback) callback(value);
  };
  const parser = new EventStreamParser({
    onEvent: hear(options.onEvent),
    onComment: hear(options.onComment),
    onLastEventId: hear(options.onLastEventId),
    lastEventId: options.lastEventId ?? "",
    onRetry(ms) {
      retryMs = ms;
      if (onRetry) onRetry(ms);
    },
  });
  for (;;) {
    heard = false;
    const result = await connectOnce(url, options, parser);
    if (result.stop) return parser.lastEventId;
    if (result.error && (!reconnect || signal?.aborted)) throw result.error;
    if (!reconnect) return parser.lastEventId;
    // A stream that ends before it says anything is no progress: a server
    // whose streams end at once, with retry: 0, would be asked again at
    // network speed, for good.
    failures = result.opened && heard ? 0 : failures + 1;
    const wait = reconnectDelay({
      retryMs,
      failures,
      maxMs: options.maxRetryDelay,
      retryAfterMs: result.retryAfter,
      jitter: options.jitter,
      random: options.random,
    });
    if (onDisconnect) onDisconnect(result.error ?? null, wait);
    await sleep(wait, signal);
  }
}

/**
 * reconnectDelay is how long fetchEventSource waits before its next attempt,
 * in whole milliseconds. It is a pure function of its arguments.
 *
 * After a stream that was open and said something (failures 0) the delay
 * is retryMs, and so it is after the first failed attempt; the n-th failed attempt in a row waits
 * retryMs × 2^(n-1) (doubling from 1 ms when retryMs is 0), at most maxMs,
 * but never less than retryMs. The delay is then raised to retryAfterMs, if
 * that is longer, and a spread of jitter × delay × random() is added: a wait
 * is never shorter than what the server asked for.
 *
 * @param {object} o
 * @param {number} o.retryMs the retry time: retryDelay or the server's retry:.
 * @param {number} [o.failures] attempts in a row that failed to open a
 *   stream, or whose stream said nothing but retry:.
 * @param {number} [o.maxMs] the back-off's cap; DEFAULT_MAX_RETRY_MS by default.
 * @param {number} [o.retryAfterMs] a Retry-After, as a lower bound.
 * @param {number} [o.jitter] DEFAULT_JITTER by default; 0 for none.
 * @param {() => number} [o.random] a number in [0, 1); Math.random by default.
 * @returns {number}
 */
export function reconnectDelay({
  retryMs,
  failures = 0,
  maxMs = DEFAULT_MAX_RETRY_MS,
  retryAfterMs = 0,
  jitter = DEFAULT_JITTER,
  random = Math.random,
}) {
  let delay = retryMs;
  if (failures > 1) {
    const grown = Math.max(retryMs, 1) * 2 ** (failures - 1);
    delay = Math.max(retryMs, Math.min(grown, maxMs));
  }
  delay = Math.max(delay, retryAfterMs);
  return Math.round(delay + delay * jitter * random());
}

// RETRYABLE are the statuses of an answer that says "not now" rather than
// "never": a server at capacity or unable to reach its store (503, with
// Retry-After), a proxy whose upstream is restarting (502, 504), a rate
// limit (429). With reconnect on, fetchEventSource tries again after them.
const RETRYABLE = new Set([429, 502, 503, 504]);

/**
 * The longest time, in milliseconds, fetchEventSource reads the body of an
 * error answer for its JSON "error": the answer is rejected with what came
 * by then.
 */
export const ERROR_BODY_TIMEOUT_MS = 3000;

/** The most bytes of an error answer's body fetchEventSource reads: ssehub's are short. */
export const ERROR_BODY_MAX_BYTES = 16 * 1024;

/** The longest wait setTimeout takes: a longer one fires at once. */
const MAX_TIMEOUT_MS = 2 ** 31 - 1;

// retryAfterMs reads a Retry-After header, in seconds or an HTTP date, as
// milliseconds from now; 0 when absent or unreadable.
function retryAfterMs(value) {
  if (value === null) return 0;
  if (/^\s*\d+\s*$/.test(value)) return Number(value) * 1000;
  const at = Date.parse(value);
  return Number.isNaN(at) ? 0 : Math.max(at - Date.now(), 0);
}

// connectOnce makes one request and reads its stream to the end. It returns
// {stop: true} for a 204 answer, {error} when fetch or a read failed
// (network, CORS, abort, or the idle watchdog's TimeoutError), {error,
// retryAfter} for a RETRYABLE answer with reconnect on, and {} when the
// stream ended; opened is true in the result once an event stream was open.
// Once the caller's signal has aborted, the error is its reason, whatever
// the request made of the abort (an error answer's body cut short).
// It throws SSEResponseError for an answer that is not an event stream,
// fetch's TypeError for a request it refuses to make, and whatever a
// callback throws. It leaves no timer or listener behind.
async function connectOnce(url, options, parser) {
  const headers = new Headers(options.headers);
  if (!headers.has("Accept")) headers.set("Accept", "text/event-stream");
  if (parser.lastEventId !== "") headers.set("Last-Event-ID", utf8Header(parser.lastEventId));
  // attempt aborts this request alone: when the caller's signal aborts, or
  // when the watchdog sees no bytes for idleTimeout.
  const attempt = new AbortController();
  const { signal } = options;
  const forward = () => attempt.abort(abortReason(signal));
  if (signal?.aborted) forward();
  else signal?.addEventListener("abort", forward, { once: true });
  let timedOut = null;
  const watchdog = idleWatchdog(options.idleTimeout, () => {
    timedOut = new DOMException(`no bytes for ${options.idleTimeout} ms`, "TimeoutError");
    attempt.abort(timedOut);
  });
  try {
    const result = await request(url, { ...options, headers, signal: attempt.signal }, parser, watchdog);
    // The watchdog's abort shows up as whatever error fetch or the read
    // made of it, which varies by browser: name it.
    if (timedOut !== null && result.error) result.error = timedOut;
    if (signal?.aborted && result.error) result.error = abortReason(signal);
    return result;
  } catch (error) {
    // An error answer whose body the caller's abort cut reads as that
    // answer: the abort is what happened.
    if (error instanceof SSEResponseError && signal?.aborted) throw abortReason(signal);
    throw error;
  } finally {
    watchdog.stop();
    signal?.removeEventListener("abort", forward);
  }
}

// utf8Header is value as a header value holding its UTF-8 bytes, the way
// EventSource sends Last-Event-ID: fetch takes a header value as a string of
// bytes, one character each, and throws for a character beyond U+00FF.
function utf8Header(value) {
  return Array.from(new TextEncoder().encode(value), (b) => String.fromCharCode(b)).join("");
}

// request is connectOnce's exchange: the fetch, the answer's checks, and
// the read, telling the watchdog of every byte that arrives.
async function request(url, init, parser, watchdog) {
  // A request fetch refuses to make (a GET with a body, a URL it cannot
  // parse) throws here: a mistake, not a network failure to retry.
  const req = new Request(url, {
    method: init.method ?? "GET",
    headers: init.headers,
    body: init.body,
    credentials: init.credentials,
    signal: init.signal,
    cache: "no-store",
  });
  let response;
  try {
    response = await fetch(req);
  } catch (error) {
    return { error };
  }
  watchdog.kick();
  if (response.status === 204) {
    await response.body?.cancel();
    return { stop: true };
  }
  if (init.reconnect && RETRYABLE.has(response.status)) {
    const retryAfter = retryAfterMs(response.headers.get("Retry-After"));
    try {
      await checkResponse(response);
    } catch (error) {
      if (!(error instanceof SSEResponseError)) throw error;
      return { error, retryAfter };
    }
  }
  await checkResponse(response);
  const reader = response.body.getReader();
  let result = null;
  try {
    if (init.onOpen) init.onOpen(response);
    for (;;) {
      let chunk;
      try {
        chunk = await reader.read();
      } catch (error) {
        result = { error, opened: true };
        break;
      }
      if (chunk.done) {
        result = { opened: true };
        break;
      }
      watchdog.kick();
      parser.write(chunk.value);
      // A callback may have aborted (a page that closes on an event). Once
      // the body is complete, node's fetch leaves the next read pending
      // forever after an abort instead of failing it: stop here.
      if (init.signal.aborted) {
        result = { error: abortReason(init.signal), opened: true };
        break;
      }
    }
  } finally {
    parser.end();
    if (result === null || result.error) reader.cancel().catch(() => {});
    reader.releaseLock();
  }
  return result;
}

// idleWatchdog calls onIdle once kick() has not been called for ms
// milliseconds, counting from its creation. For ms 0 or undefined it does
// nothing. stop() clears its timer; it must be called once the attempt it
// watches is over.
function idleWatchdog(ms, onIdle) {
  if (!(ms > 0)) return { kick() {}, stop() {} };
  let timer = null;
  const stop = () => {
    clearTimeout(timer);
    timer = null;
  };
  const kick = () => {
    clearTimeout(timer);
    timer = setTimeout(onIdle, Math.min(ms, MAX_TIMEOUT_MS));
  };
  kick();
  return { kick, stop };
}

// checkResponse throws an SSEResponseError unless response is a 2xx
// text/event-stream answer.
async function checkResponse(response) {
  const type = response.headers.get("Content-Type") ?? "";
  const isStream = type.split(";")[0].trim().toLowerCase() === "text/event-stream";
  if (response.ok && isStream) return;
  let serverError = "";
  if (response.ok) {
    // A 200 of another type may never end: do not read it.
    await response.body?.cancel();
  } else {
    serverError = await errorText(response.body);
  }
  let message = `HTTP ${response.status}`;
  if (serverError !== "") message += `: ${serverError}`;
  else if (!response.ok) message += response.statusText ? ` ${response.statusText}` : "";
  else message += `: expected text/event-stream, got ${JSON.stringify(type)}`;
  throw new SSEResponseError(message, response.status, serverError);
}

// errorText reads a JSON error body until it parses, ends, passes
// ERROR_BODY_MAX_BYTES or fails (an abort), for ERROR_BODY_TIMEOUT_MS at
// most, and returns its "error", "" when there is none: an error body that
// trickles or never ends holds the answer back no longer than that.
export async function errorText(body) {
  if (body === null) return "";
  const reader = body.getReader();
  const decoder = new TextDecoder();
  let text = "";
  let size = 0;
  let timer = null;
  const late = new Promise((resolve) => {
    timer = setTimeout(resolve, ERROR_BODY_TIMEOUT_MS, null);
  });
  try {
    for (;;) {
      const chunk = await Promise.race([reader.read(), late]);
      if (chunk === null || chunk.done) break;
      size += chunk.value.length;
      text += decoder.decode(chunk.value, { stream: true });
      try {
        const parsed = JSON.parse(text);
        return parsed && typeof parsed.error === "string" ? parsed.error : "";
      } catch {
        // Not whole yet, or not JSON: the status says enough.
      }
      if (size >= ERROR_BODY_MAX_BYTES) break;
    }
  } catch {
    // The read failed (an abort): the status says enough.
  } finally {
    clearTimeout(timer);
    reader.cancel().catch(() => {});
  }
  return "";
}

function abortReason(signal) {
  return signal.reason ?? new DOMException("The operation was aborted.", "AbortError");
}

// sleep waits ms milliseconds (at most MAX_TIMEOUT_MS, about 24.8 days), or
// rejects with the abort reason when signal aborts.
function sleep(ms, signal) {
  ms = Math.min(ms, MAX_TIMEOUT_MS);
  return new Promise((resolve, reject) => {
    if (signal?.aborted) {
      reject(abortReason(signal));
      return;
    }
    const onAbort = () => {
      clearTimeout(timer);
      reject(abortReason(signal));
    };
    const timer = setTimeout(() => {
      signal?.removeEventListener("abort", onAbort);
      resolve();
    }, ms);
    signal?.addEventListener("abort", onAbort, { once: true });
  });
}
