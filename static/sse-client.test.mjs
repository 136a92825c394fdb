// Tests of sse-client.js with node's built-in runner: `node --test static/`.
// The parser is checked against the WHATWG examples and chunk boundaries at
// every offset; fetchEventSource against a real node:http server, its
// reconnect delays through reconnectDelay and an injected random source, its
// idle watchdog with node's mock timers where exact timing matters, and its
// cleanup by a child process that must exit.
import { test, describe } from "node:test";
import assert from "node:assert/strict";
import http from "node:http";
import { once } from "node:events";
import { execFile } from "node:child_process";
import diagnosticsChannel from "node:diagnostics_channel";

import {
  DEFAULT_JITTER,
  DEFAULT_MAX_RETRY_MS,
  ERROR_BODY_MAX_BYTES,
  ERROR_BODY_TIMEOUT_MS,
  EventStreamParser,
  SSEResponseError,
  fetchEventSource,
  reconnectDelay,
} from "./sse-client.js";

const utf8 = new TextEncoder();

// collect returns a parser that records everything it reports.
function collect(options = {}) {
  const got = { events: [], comments: [], retries: [] };
  const parser = new EventStreamParser({
    ...options,
    onEvent: (ev) => got.events.push(ev),
    onComment: (text) => got.comments.push(text),
    onRetry: (ms) => got.retries.push(ms),
  });
  return { parser, got };
}

// parseText feeds text chunks, ends the stream and returns what was reported.
function parseText(...chunks) {
  const { parser, got } = collect();
  for (const chunk of chunks) parser.feed(chunk);
  parser.end();
  return { ...got, lastEventId: parser.lastEventId };
}

// parseBytes writes byte chunks, ends the stream and returns what was reported.
function parseBytes(...chunks) {
  const { parser, got } = collect();
  for (const chunk of chunks) parser.write(chunk);
  parser.end();
  return { ...got, lastEventId: parser.lastEventId };
}

function ev(data, { type = "message", id = "" } = {}) {
  return { type, data, lastEventId: id };
}

describe("EventStreamParser: the spec's examples", () => {
  test("data lines join with LF", () => {
    const got = parseText("data: YHOO\ndata: +2\ndata: 10\n\n");
    assert.deepEqual(got.events, [ev("YHOO\n+2\n10")]);
  });

  test("comments, ids and a bare id field", () => {
    const got = parseText(
      ": test stream\n\ndata: first event\nid: 1\n\ndata:second event\nid\n\ndata:  third event\n\n",
    );
    assert.deepEqual(got.comments, ["test stream"]);
    assert.deepEqual(got.events, [ev("first event", { id: "1" }), ev("second event"), ev(" third event")]);
  });

  test("fields without a colon, and an unfinished event discarded at the end", () => {
    const got = parseText("data\n\ndata\ndata\n\ndata:");
    assert.deepEqual(got.events, [ev(""), ev("\n")]);
  });

  test("one space after the colon is optional", () => {
    const got = parseText("data:test\n\ndata: test\n\n");
    assert.deepEqual(got.events, [ev("test"), ev("test")]);
  });
});

describe("EventStreamParser: fields", () => {
  test("named events and the type reset after each dispatch", () => {
    const got = parseText("event: close\ndata: bye\n\ndata: next\n\n");
    assert.deepEqual(got.events, [ev("bye", { type: "close" }), ev("next")]);
  });

  test("an empty event name means message", () => {
    assert.deepEqual(parseText("event\ndata: x\n\n").events, [ev("x")]);
  });

  test("no data line, no event: blank lines and event-only frames dispatch nothing", () => {
    assert.deepEqual(parseText("\n\n\nevent: ping\n\n").events, []);
  });

  test("unknown fields are ignored", () => {
    assert.deepEqual(parseText("foo: bar\nDATA: x\ndata: y\n\n").events, [ev("y")]);
  });

  test("comments, with and without text, never dispatch", () => {
    const got = parseText(":\n: ping\n:no space\n\n");
    assert.deepEqual(got.comments, ["", "ping", "no space"]);
    assert.deepEqual(got.events, []);
  });

  test("retry takes ASCII digits only", () => {
    const got = parseText(
      "retry: 1500\nretry: 15x\nretry: -1\nretry:\nretry: 1.5\nretry:  20\nretry\nretry:0\n",
    );
    assert.deepEqual(got.retries, [1500, 0]);
  });

  test("the id persists until the stream changes it", () => {
    const got = parseText("id: 7\ndata: a\n\ndata: b\n\nid\ndata: c\n\n");
    assert.deepEqual(got.events, [ev("a", { id: "7" }), ev("b", { id: "7" }), ev("c")]);
  });

  test("an id holding NUL is ignored", () => {
    const got = parseText("id: 1\ndata: a\n\nid: 2\0x\ndata: b\n\n");
    assert.deepEqual(got.events, [ev("a", { id: "1" }), ev("b", { id: "1" })]);
  });

  test("an id takes effect at the blank line even without data", () => {
    const got = parseText("id: 42\n\n");
    assert.deepEqual(got.events, []);
    assert.equal(got.lastEventId, "42");
  });

  test("onLastEventId sees each change, an id alone included, before its event", () => {
    const seen = [];
    const parser = new EventStreamParser({
      onLastEventId: (id) => seen.push(`id ${id}`),
      onEvent: (e) => seen.push(`event ${e.data}`),
    });
    parser.feed("retry: 5\n\nid: 4\n\nid: 5\ndata: a\n\ndata: b\n\nid: 5\ndata: c\n\n");
    assert.deepEqual(seen, ["id 4", "id 5", "event a", "event b", "event c"]);
  });

  test("an id in an unfinished event is discarded", () => {
    assert.equal(parseText("id: 1\n\nid: 2\ndata: x\n").lastEventId, "1");
  });
});

describe("EventStreamParser: line ends and chunks", () => {
  const want = [ev("a", { id: "1" }), ev("b\nc", { type: "t", id: "1" })];

  test("LF, CRLF and CR alone end lines alike", () => {
    for (const eol of ["\n", "\r\n", "\r"]) {
      const text = ["id: 1", "data: a", "", "event: t", "data: b", "data: c", "", ""].join(eol);
      assert.deepEqual(parseText(text).events, want, JSON.stringify(eol));
    }
  });

  test("mixed line ends in one stream", () => {
    assert.deepEqual(parseText("id: 1\r\ndata: a\r\revent: t\ndata: b\rdata: c\r\n\n").events, want);
  });

  test("several frames in one chunk", () => {
    const text = Array.from({ length: 5 }, (_, i) => `id: ${i}\ndata: line ${i}\n\n`).join("");
    const got = parseText(text);
    assert.deepEqual(
      got.events.map((e) => [e.lastEventId, e.data]),
      [0, 1, 2, 3, 4].map((i) => [String(i), `line ${i}`]),
    );
  });

  test("a CR ending one chunk and an LF starting the next are one line end", () => {
    assert.deepEqual(parseText("data: a\r", "\ndata: b\r", "\n\r", "\n").events, [ev("a\nb")]);
  });

  test("a CRLF ending a chunk does not swallow an LF starting the next", () => {
    assert.deepEqual(parseText("data: a\r\n", "\ndata: b\n\n").events, [ev("a"), ev("b")]);
  });

  test("a CR ending a chunk, then another line", () => {
    assert.deepEqual(parseText("data: a\r", "data: b\r", "\r").events, [ev("a\nb")]);
  });

  test("empty chunks change nothing", () => {
    assert.deepEqual(parseText("", "data: a\r", "", "\n", "", "\n", "").events, [ev("a")]);
  });

  // A stream with every line end, a comment, retry, a BOM and multi-byte text.
  const stream =
    "\uFEFF: hi\r\nretry: 250\rid: é1\ndata: héllo 世界 🎉\r\n\r\nevent: close\rdata: bye\r\rdata: ✓\n\n";
  const streamEvents = [
    ev("héllo 世界 🎉", { id: "é1" }),
    ev("bye", { type: "close", id: "é1" }),
    ev("✓", { id: "é1" }),
  ];

  test("text split at every offset parses as a whole", () => {
    const whole = parseText(stream);
    assert.deepEqual(whole.events, streamEvents);
    assert.deepEqual(whole.comments, ["hi"]);
    assert.deepEqual(whole.retries, [250]);
    for (let i = 0; i <= stream.length; i++) {
      assert.deepEqual(parseText(stream.slice(0, i), stream.slice(i)), whole, `split at ${i}`);
    }
  });

  test("bytes split at every offset, and at every pair of offsets, parse as a whole", () => {
    const bytes = utf8.encode(stream);
    const whole = parseBytes(bytes);
    assert.deepEqual(whole.events, streamEvents);
    for (let i = 0; i <= bytes.length; i++) {
      for (let j = i; j <= bytes.length; j++) {
        const got = parseBytes(bytes.subarray(0, i), bytes.subarray(i, j), bytes.subarray(j));
        assert.deepEqual(got, whole, `split at ${i} and ${j}`);
      }
    }
  });

  test("bytes fed one at a time", () => {
    const bytes = utf8.encode(stream);
    const chunks = Array.from(bytes, (b) => Uint8Array.of(b));
    assert.deepEqual(parseBytes(...chunks).events, streamEvents);
  });

  test("a 4-byte character split inside its bytes", () => {
    const bytes = utf8.encode("data: 🎉\n\n");
    // Bytes 6..9 are the emoji: split after each of its first three bytes.
    for (const at of [7, 8, 9]) {
      assert.deepEqual(parseBytes(bytes.subarray(0, at), bytes.subarray(at)).events, [ev("🎉")]);
    }
  });

  test("invalid UTF-8 becomes U+FFFD", () => {
    const bytes = Uint8Array.of(...utf8.encode("data: a"), 0xff, ...utf8.encode("b\n\n"));
    assert.deepEqual(parseBytes(bytes).events, [ev("a\uFFFDb")]);
  });
});

describe("EventStreamParser: BOM and stream ends", () => {
  test("one leading BOM is skipped", () => {
    assert.deepEqual(parseText("\uFEFFdata: x\n\n").events, [ev("x")]);
  });

  test("a second BOM is part of the first field name", () => {
    assert.deepEqual(parseText("\uFEFF\uFEFFdata: x\n\ndata: y\n\n").events, [ev("y")]);
  });

  test("a BOM later in the stream is text", () => {
    assert.deepEqual(parseText("data: a\n\n", "\uFEFFdata: b\n\n").events, [ev("a")]);
  });

  test("a second BOM in bytes is not skipped", () => {
    assert.deepEqual(parseBytes(utf8.encode("\uFEFF\uFEFFdata: x\n\ndata: y\n\n")).events, [ev("y")]);
  });

  test("a BOM in bytes, split across chunks", () => {
    const bytes = utf8.encode("\uFEFFdata: x\n\n");
    assert.equal(bytes[0], 0xef);
    for (const at of [1, 2, 3]) {
      assert.deepEqual(parseBytes(bytes.subarray(0, at), bytes.subarray(at)).events, [ev("x")]);
    }
  });

  test("end() discards the unfinished event; the next stream starts clean but keeps the id", () => {
    const { parser, got } = collect();
    parser.feed("id: 3\ndata: a\n\nevent: t\ndata: half");
    parser.end();
    parser.feed("\uFEFFdata: b\n\n");
    parser.end();
    assert.deepEqual(got.events, [ev("a", { id: "3" }), ev("b", { id: "3" })]);
  });

  test("a CR ending one stream does not eat an LF starting the next", () => {
    const { parser, got } = collect();
    parser.feed("data: a\n\r");
    parser.end();
    parser.feed("\ndata: b\n\n");
    parser.end();
    assert.deepEqual(got.events, [ev("a"), ev("b")]);
  });

  test("the lastEventId option seeds ids", () => {
    const { parser, got } = collect({ lastEventId: "9" });
    assert.equal(parser.lastEventId, "9");
    parser.feed("data: a\n\n");
    assert.deepEqual(got.events, [ev("a", { id: "9" })]);
  });
});

// fetchSockets are the open sockets of node's fetch. A test with mock
// timers waits for its own to close (fetchSocketsClosed) before it ends:
// fetch clears a socket's timers when the socket closes, and a timer made
// under one test's mock timers, cleared under the next test's, takes the
// place in the queue of one of that test's own, which then never fires.
const fetchSockets = new Map(); // socket: { port it connected to, promise of its close }
diagnosticsChannel.subscribe("undici:client:connected", ({ socket }) => {
  const closed = new Promise((resolve) => socket.once("close", resolve)).then(() => fetchSockets.delete(socket));
  fetchSockets.set(socket, { port: String(socket.remotePort), closed });
});

// fetchSocketsClosed closes servers, every connection included, and
// resolves once fetch has seen each of its sockets to them close.
async function fetchSocketsClosed(...servers) {
  const ports = servers.map((srv) => new URL(srv.url).port);
  for (const srv of servers) srv.close();
  const waits = [];
  for (const [socket, { port, closed }] of fetchSockets) {
    if (!ports.includes(port)) continue;
    // fetch unrefs an idle socket: its close must not wait for an event
    // loop that has nothing else to do.
    socket.ref();
    waits.push(closed);
  }
  await Promise.all(waits);
}

// serve starts a node:http server on loopback whose handler is called with
// (req, res, n), n counting requests from 0. It returns the base URL, the
// requests' headers and a close function.
async function serve(handler) {
  const requests = [];
  const server = http.createServer((req, res) => {
    const n = requests.length;
    let body = "";
    req.setEncoding("utf8");
    req.on("data", (s) => (body += s));
    req.on("end", () => {
      requests.push({ method: req.method, url: req.url, headers: req.headers, body });
      handler(req, res, n, body);
    });
  });
  server.listen(0, "127.0.0.1");
  await once(server, "listening");
  const { port } = server.address();
  return {
    url: `http://127.0.0.1:${port}`,
    requests,
    close() {
      server.closeAllConnections();
      server.close();
    },
  };
}

function sse(res, status = 200) {
  res.writeHead(status, { "Content-Type": "text/event-stream; charset=utf-8", "Cache-Control": "no-cache" });
}

describe("fetchEventSource", { timeout: 20_000 }, () => {
  test("POSTs the body, opens, streams events split across writes, resolves at the end", async (t) => {
    const srv = await serve((req, res) => {
      sse(res);
      res.write("retry: 1000\nid: 1\nda");
      res.write('ta: {"index": 0}\n\ndata: [DO');
      res.end("NE]\n\n");
    });
    t.after(srv.close);
    const events = [];
    let opened = 0;
    const last = await fetchEventSource(`${srv.url}/stream`, {
      method: "POST",
      headers: { "Content-Type": "application/json" },
      body: JSON.stringify({ text: "hi" }),
      onOpen(response) {
        assert.equal(response.status, 200);
        opened++;
      },
      onEvent: (e) => events.push(e),
    });
    assert.equal(opened, 1);
    assert.equal(last, "1");
    assert.deepEqual(events, [ev('{"index": 0}', { id: "1" }), ev("[DONE]", { id: "1" })]);
    const [req] = srv.requests;
    assert.equal(req.method, "POST");
    assert.equal(req.body, '{"text":"hi"}');
    assert.equal(req.headers["content-type"], "application/json");
    assert.equal(req.headers.accept, "text/event-stream");
    assert.equal(req.headers["last-event-id"], undefined);
  });

  test("a JSON error answer rejects with its status and error text", async (t) => {
    const srv = await serve((req, res) => {
      res.writeHead(400, { "Content-Type": "application/json" });
      res.end('{"error": "interval must be at most 5s"}');
    });
    t.after(srv.close);
    await assert.rejects(fetchEventSource(srv.url, { onOpen: () => assert.fail("opened") }), (err) => {
      assert.ok(err instanceof SSEResponseError);
      assert.equal(err.status, 400);
      assert.equal(err.message, "HTTP 400: interval must be at most 5s");
      return true;
    });
  });

  test("a non-JSON error answer rejects with its status", async (t) => {
    const srv = await serve((req, res) => {
      res.writeHead(502, "Bad Gateway", { "Content-Type": "text/html" });
      res.end("<h1>oops</h1>");
    });
    t.after(srv.close);
    await assert.rejects(fetchEventSource(srv.url), { name: "SSEResponseError", message: "HTTP 502 Bad Gateway" });
  });

  test("an error body that never ends is read until its JSON is whole, to a byte cap, or for a bounded time", async (t) => {
    // The bodies say they are longer than what is sent, and stay open: a
    // server or proxy that trickles its error, or hangs in the middle.
    const srv = await serve((req, res) => {
      res.writeHead(403, "Forbidden", { "Content-Type": "application/json", "Content-Length": String(1 << 20) });
      if (req.url === "/whole") res.write('{"error": "topic \\"a\\" is not granted"}');
      else if (req.url === "/endless") res.write(" ".repeat(ERROR_BODY_MAX_BYTES + 1));
      else res.write('{"error": "topic');
    });
    t.after(srv.close);
    const reject = (path) =>
      fetchEventSource(srv.url + path, { reconnect: true }).then(
        () => assert.fail("resolved"),
        (e) => e,
      );
    let err = await reject("/whole");
    assert.ok(err instanceof SSEResponseError);
    assert.equal(err.message, 'HTTP 403: topic "a" is not granted');
    err = await reject("/endless");
    assert.equal(err.message, "HTTP 403 Forbidden");
    // A body cut mid-way waits ERROR_BODY_TIMEOUT_MS, armed once the
    // headers came, then the status says enough.
    t.mock.timers.enable({ apis: ["setTimeout"] });
    const w = waiter();
    const mocked = globalThis.setTimeout;
    let armed = 0;
    globalThis.setTimeout = (fn, ms, ...args) => {
      if (ms === ERROR_BODY_TIMEOUT_MS) (armed++, w.check());
      return mocked(fn, ms, ...args);
    };
    t.after(() => (globalThis.setTimeout = mocked));
    const settled = { error: null };
    const done = fetchEventSource(srv.url + "/cut", { reconnect: true }).then(
      () => (settled.error = "resolved"),
      (e) => (settled.error = e),
    );
    await w.until(() => armed === 1);
    t.mock.timers.tick(ERROR_BODY_TIMEOUT_MS - 1);
    await new Promise(setImmediate);
    assert.equal(settled.error, null, "given up before ERROR_BODY_TIMEOUT_MS");
    t.mock.timers.tick(1);
    await done;
    assert.equal(settled.error?.message, "HTTP 403 Forbidden");
    await fetchSocketsClosed(srv);
  });

  test("a 200 answer that is not an event stream rejects", async (t) => {
    const srv = await serve((req, res) => {
      res.writeHead(200, { "Content-Type": "text/html" });
      res.end("<html></html>");
    });
    t.after(srv.close);
    await assert.rejects(fetchEventSource(srv.url, { reconnect: true }), {
      name: "SSEResponseError",
      message: 'HTTP 200: expected text/event-stream, got "text/html"',
    });
  });

  test("a refused connection rejects with fetch's own TypeError", async () => {
    const srv = await serve(() => {});
    srv.close();
    await assert.rejects(fetchEventSource(srv.url), TypeError);
  });

  test("reconnects after the retry: time with Last-Event-ID until a 204", { timeout: 10_000 }, async (t) => {
    const srv = await serve((req, res, n) => {
      if (n === 0) {
        sse(res);
        res.end("retry: 1\nid: 1\ndata: a\n\n");
      } else if (n === 1) {
        sse(res);
        // A dropped connection: the socket dies in the middle of a frame.
        res.write("id: 2\ndata: b\n\nid: 3\ndata: lost");
        setImmediate(() => res.socket.destroy());
      } else {
        res.writeHead(204);
        res.end();
      }
    });
    t.after(srv.close);
    const events = [];
    const disconnects = [];
    const retries = [];
    // retryDelay is far beyond the test's timeout: only retry: makes it pass.
    // t.signal ends the wait when the test times out.
    const last = await fetchEventSource(srv.url, {
      signal: t.signal,
      reconnect: true,
      jitter: 0,
      retryDelay: 600_000,
      onEvent: (e) => events.push(e),
      onRetry: (ms) => retries.push(ms),
      onDisconnect: (err, delay) => disconnects.push([err === null ? null : err.name, delay]),
    });
    assert.equal(last, "2");
    assert.deepEqual(events, [ev("a", { id: "1" }), ev("b", { id: "2" })]);
    assert.deepEqual(retries, [1]);
    assert.deepEqual(disconnects, [
      [null, 1],
      ["TypeError", 1],
    ]);
    assert.deepEqual(
      srv.requests.map((r) => r.headers["last-event-id"]),
      [undefined, "1", "2"],
    );
  });

  test("with reconnect, an answer that says not now (503, 502) is tried again after its Retry-After", { timeout: 10_000 }, async (t) => {
    const srv = await serve((req, res, n) => {
      if (n === 0) {
        sse(res);
        res.end("retry: 1\nid: 1\ndata: a\n\n");
      } else if (n === 1) {
        res.writeHead(503, { "Content-Type": "application/json", "Retry-After": "1" });
        res.end('{"error": "too many streams: try again later"}');
      } else if (n === 2) {
        res.writeHead(502, "Bad Gateway", { "Content-Type": "text/html" });
        res.end("<h1>upstream restarting</h1>");
      } else if (n === 3) {
        sse(res);
        res.end("id: 2\ndata: b\n\n");
      } else {
        res.writeHead(204);
        res.end();
      }
    });
    t.after(srv.close);
    const events = [];
    const disconnects = [];
    const last = await fetchEventSource(srv.url, {
      signal: t.signal,
      reconnect: true,
      jitter: 0,
      onEvent: (e) => events.push(e.data),
      onDisconnect: (err, delay) => disconnects.push([err === null ? null : `${err.name} ${err.status}`, delay]),
    });
    assert.equal(last, "2");
    assert.deepEqual(events, ["a", "b"]);
    assert.deepEqual(disconnects, [
      [null, 1],
      ["SSEResponseError 503", 1000], // the Retry-After, longer than retry:
      ["SSEResponseError 502", 2], // the second failure in a row: twice retry:
      [null, 1],
    ]);
    assert.deepEqual(
      srv.requests.map((r) => r.headers["last-event-id"]),
      [undefined, "1", "1", "1", "2"],
    );
  });

  test("with reconnect, an answer that says never (400, 401, 403, 404) still rejects", async (t) => {
    for (const status of [400, 401, 403, 404]) {
      const srv = await serve((req, res, n) => {
        if (n === 0) {
          sse(res);
          res.end("retry: 1\ndata: a\n\n");
          return;
        }
        res.writeHead(status, { "Content-Type": "application/json" });
        res.end('{"error": "no"}');
      });
      t.after(srv.close);
      await assert.rejects(fetchEventSource(srv.url, { signal: t.signal, reconnect: true }), { name: "SSEResponseError", status });
      assert.equal(srv.requests.length, 2);
    }
  });

  test("a retry: past setTimeout's range waits instead of reconnecting at once", async (t) => {
    const srv = await serve((req, res) => {
      sse(res);
      res.end("retry: 2592000000\ndata: a\n\n"); // 30 days, as stream.retry allows
    });
    t.after(srv.close);
    // setTimeout fires a longer wait after 1 ms: unclamped, this loop
    // reconnected about 30 times in 100 ms. The wait's timer is set as
    // onDisconnect returns, before this test goes on.
    const timers = t.mock.method(globalThis, "setTimeout");
    const run = new AbortController();
    let disconnected;
    const waiting = new Promise((resolve) => (disconnected = resolve));
    const done = fetchEventSource(srv.url, { signal: run.signal, reconnect: true, onDisconnect: () => disconnected() });
    await waiting;
    const delays = timers.mock.calls.map((c) => c.arguments[1]);
    timers.mock.restore();
    run.abort();
    await assert.rejects(done, { name: "AbortError" });
    assert.ok(delays.includes(2 ** 31 - 1), `no wait clamped to setTimeout's range: ${delays}`);
    assert.ok(
      delays.every((ms) => !(ms > 2 ** 31 - 1)),
      `a timer past setTimeout's range, which fires at once: ${delays}`,
    );
    assert.equal(srv.requests.length, 1);
  });

  test("without reconnect, a dropped stream rejects with the read error", async (t) => {
    const srv = await serve((req, res) => {
      sse(res);
      res.write("data: a\n\n");
      setImmediate(() => res.socket.destroy());
    });
    t.after(srv.close);
    const events = [];
    await assert.rejects(fetchEventSource(srv.url, { onEvent: (e) => events.push(e.data) }), TypeError);
    assert.deepEqual(events, ["a"]);
  });

  test("the lastEventId option is sent on the first request", async (t) => {
    const srv = await serve((req, res) => {
      res.writeHead(204);
      res.end();
    });
    t.after(srv.close);
    assert.equal(await fetchEventSource(srv.url, { lastEventId: "41", reconnect: true }), "41");
    assert.equal(srv.requests[0].headers["last-event-id"], "41");
  });

  test("an id outside Latin-1 is sent back as UTF-8, as EventSource sends it", async (t) => {
    const id = "käse-日本-🧀";
    const srv = await serve((req, res, n) => {
      if (n === 0) {
        sse(res);
        res.end(`retry: 1\nid: ${id}\ndata: a\n\n`);
      } else {
        res.writeHead(204);
        res.end();
      }
    });
    t.after(srv.close);
    const last = await fetchEventSource(srv.url, { signal: t.signal, reconnect: true, jitter: 0, lastEventId: "é" });
    assert.equal(last, id);
    // node reads header bytes as Latin-1: turn them back into the bytes sent.
    const sent = srv.requests.map((r) => Buffer.from(r.headers["last-event-id"], "latin1").toString("utf8"));
    assert.deepEqual(sent, ["é", id]);
  });

  test("abort while streaming rejects with an AbortError and closes the request", async (t) => {
    let closed;
    const srv = await serve((req, res) => {
      sse(res);
      res.write("data: first\n\n");
      closed = once(res, "close");
    });
    t.after(srv.close);
    const ctrl = new AbortController();
    await assert.rejects(
      fetchEventSource(srv.url, { signal: ctrl.signal, reconnect: true, onEvent: () => ctrl.abort() }),
      { name: "AbortError" },
    );
    await closed;
  });

  test("abort while an error answer's body is read rejects with an AbortError, reconnect or not", async (t) => {
    // Error answers whose bodies never come whole.
    const srv = await serve((req, res) => {
      res.writeHead(req.url === "/busy" ? 503 : 400, { "Content-Type": "application/json", "Content-Length": "100" });
      res.write('{"error": "too many');
    });
    t.after(srv.close);
    // The idle watchdog, ten minutes long, is armed when the request
    // starts and again when the answer's headers came: the abort comes
    // after them, while the client reads the body, however slow the
    // machine is.
    t.mock.timers.enable({ apis: ["setTimeout"] });
    const w = waiter();
    const mocked = globalThis.setTimeout;
    let armed = 0;
    globalThis.setTimeout = (fn, ms, ...args) => {
      if (ms === 600_000) (armed++, w.check());
      return mocked(fn, ms, ...args);
    };
    t.after(() => (globalThis.setTimeout = mocked));
    for (const [path, reconnect] of [
      ["/busy", true],
      ["/busy", false],
      ["/bad", true],
      ["/bad", false],
    ]) {
      armed = 0;
      const ctrl = new AbortController();
      const settled = { error: null };
      const done = fetchEventSource(srv.url + path, { signal: ctrl.signal, reconnect, idleTimeout: 600_000 }).then(
        () => (settled.error = "resolved"),
        (err) => (settled.error = err),
      );
      await w.until(() => armed === 2);
      ctrl.abort();
      await done;
      assert.equal(settled.error?.name, "AbortError", `${path}, reconnect ${reconnect}: ${settled.error}`);
    }
    await fetchSocketsClosed(srv);
  });

  test("abort from onEvent on a stream's last event rejects with an AbortError", async (t) => {
    let stream;
    const srv = await serve((req, res) => {
      sse(res);
      res.write("data: a\n\n");
      stream = res;
    });
    t.after(srv.close);
    const ctrl = new AbortController();
    const events = [];
    // The page closes on the close event, which ends the body: node's
    // fetch then left the next read pending forever, and this never settled.
    await assert.rejects(
      fetchEventSource(srv.url, {
        signal: ctrl.signal,
        reconnect: true,
        idleTimeout: 600_000,
        onEvent(e) {
          events.push(e.type);
          if (e.type === "message") stream.end("event: close\ndata: bye\n\n");
          else ctrl.abort();
        },
      }),
      { name: "AbortError" },
    );
    assert.deepEqual(events, ["message", "close"]);
    assert.equal(srv.requests.length, 1);
  });

  test("abort during the reconnect wait rejects with an AbortError", async (t) => {
    const srv = await serve((req, res) => {
      sse(res);
      res.end("data: only\n\n");
    });
    t.after(srv.close);
    const ctrl = new AbortController();
    await assert.rejects(
      fetchEventSource(srv.url, {
        signal: ctrl.signal,
        reconnect: true,
        retryDelay: 600_000,
        onDisconnect: () => queueMicrotask(() => ctrl.abort()),
      }),
      { name: "AbortError" },
    );
    assert.equal(srv.requests.length, 1);
  });

  test("an error thrown by onEvent rejects and is not retried", async (t) => {
    const srv = await serve((req, res) => {
      sse(res);
      res.write("data: a\n\n");
    });
    t.after(srv.close);
    const boom = new TypeError("bug in a callback");
    await assert.rejects(
      fetchEventSource(srv.url, {
        reconnect: true,
        onEvent() {
          throw boom;
        },
      }),
      (err) => err === boom,
    );
    assert.equal(srv.requests.length, 1);
  });
});

describe("fetchEventSource: requests that can never be sent", { timeout: 10_000 }, () => {
  // A request fetch refuses to make (a GET with a body, a URL it cannot
  // parse) is a mistake of the caller, not a network failure: with
  // reconnect it rejected never, trying again forever, with back-off.
  for (const [name, url, init] of [
    ["a GET with a body", "http://127.0.0.1:9/stream", { body: "x" }],
    ["a URL that does not parse", "http://[::1/stream", {}],
  ]) {
    test(`${name} rejects at once with fetch's TypeError`, async (t) => {
      const disconnects = [];
      await assert.rejects(
        fetchEventSource(url, {
          ...init,
          signal: t.signal,
          reconnect: true,
          retryDelay: 0,
          jitter: 0,
          onDisconnect: (err) => disconnects.push(err),
        }),
        TypeError,
      );
      assert.deepEqual(disconnects, []);
    });
  }
});

describe("reconnectDelay", () => {
  test("jitter adds up to jitter times the delay, never less than the delay", () => {
    const at = (r, jitter) => reconnectDelay({ retryMs: 3000, jitter, random: () => r });
    assert.equal(at(0, 0.5), 3000);
    assert.equal(at(0.5, 0.5), 3750);
    assert.equal(at(0.999999, 0.5), 4500); // rounded: random() stays below 1
    assert.equal(at(0.999999, 1), 6000);
    assert.equal(at(0.7, 0), 3000, "jitter 0 is exact");
    // The default is DEFAULT_JITTER, and it is on.
    assert.ok(DEFAULT_JITTER > 0);
    assert.equal(reconnectDelay({ retryMs: 1000, random: () => 0.5 }), 1000 + 1000 * DEFAULT_JITTER * 0.5);
    // Math.random by default: every wait lands in [delay, delay × (1 + jitter)].
    for (let i = 0; i < 1000; i++) {
      const wait = reconnectDelay({ retryMs: 3000, jitter: 0.5 });
      assert.ok(wait >= 3000 && wait <= 4500, `${wait}`);
    }
  });

  test("back-off doubles for each failed attempt in a row after the first, up to the cap", () => {
    const waits = (retryMs, maxMs, n = 9) =>
      Array.from({ length: n }, (_, failures) => reconnectDelay({ retryMs, failures, maxMs, jitter: 0 }));
    assert.deepEqual(waits(1000, 10_000), [1000, 1000, 2000, 4000, 8000, 10_000, 10_000, 10_000, 10_000]);
    // The default cap.
    assert.equal(DEFAULT_MAX_RETRY_MS, 60_000);
    assert.equal(reconnectDelay({ retryMs: 3000, failures: 100, jitter: 0 }), DEFAULT_MAX_RETRY_MS);
    assert.equal(reconnectDelay({ retryMs: 3000, failures: 5000, jitter: 0 }), DEFAULT_MAX_RETRY_MS);
    // The cap never shortens the server's own retry:.
    assert.deepEqual(waits(120_000, 60_000, 4), [120_000, 120_000, 120_000, 120_000]);
    // retry: 0 reconnects at once after a drop, but a down server is not
    // hammered: the back-off grows from 1 ms.
    assert.deepEqual(waits(0, 60_000, 5), [0, 0, 2, 4, 8]);
    // Jitter spreads the backed-off delay too.
    assert.equal(reconnectDelay({ retryMs: 1000, failures: 3, maxMs: 60_000, jitter: 0.5, random: () => 0.5 }), 5000);
  });

  test("Retry-After is a lower bound, and jitter goes on top of it", () => {
    assert.equal(reconnectDelay({ retryMs: 1000, failures: 1, retryAfterMs: 5000, jitter: 0 }), 5000);
    assert.equal(reconnectDelay({ retryMs: 1000, failures: 1, retryAfterMs: 5000, jitter: 0.5, random: () => 0.5 }), 6250);
    // Above the back-off's cap too.
    assert.equal(reconnectDelay({ retryMs: 1000, failures: 9, maxMs: 2000, retryAfterMs: 120_000, jitter: 0 }), 120_000);
    // A back-off already longer than Retry-After stays.
    assert.equal(reconnectDelay({ retryMs: 1000, failures: 4, retryAfterMs: 5000, jitter: 0 }), 8000);
  });
});

describe("fetchEventSource: back-off and jitter", { timeout: 20_000 }, () => {
  test("streams that end before they say anything but retry: back off: retry: 0 does not reconnect at network speed", async (t) => {
    // A server (not ssehub, which never sends retry: 0) whose streams
    // end at once: each was counted as a stream opened, and the client
    // came back every 0 ms, for good. The first reconnect is still at
    // once; a stream that says anything (here a comment) resets the
    // back-off, as an event or an id does.
    const srv = await serve((req, res, n) => {
      if (n === 7) {
        res.writeHead(204);
        res.end();
        return;
      }
      sse(res);
      res.end(n === 4 ? ": hello\n\n" : "retry: 0\n\n");
    });
    t.after(srv.close);
    const delays = [];
    await fetchEventSource(srv.url, { signal: t.signal, reconnect: true, jitter: 0, onDisconnect: (err, ms) => delays.push(ms) });
    assert.deepEqual(delays, [0, 2, 4, 8, 0, 0, 2]);
  });

  test("back-off grows over failed attempts in a row, is capped, and resets once a stream is open", async (t) => {
    const srv = await serve((req, res, n) => {
      if (n === 0) {
        sse(res);
        res.end("retry: 1\nid: 1\ndata: a\n\n");
      } else if (n <= 5) {
        res.writeHead(503, { "Content-Type": "application/json" });
        res.end('{"error": "too many streams: try again later"}');
      } else if (n === 6) {
        // Open, then dropped.
        sse(res);
        res.write("id: 2\ndata: b\n\n");
        setImmediate(() => res.socket.destroy());
      } else if (n <= 8) {
        // Network errors: the connection dies before an answer.
        res.socket.destroy();
      } else {
        res.writeHead(204);
        res.end();
      }
    });
    t.after(srv.close);
    const events = [];
    const disconnects = [];
    const last = await fetchEventSource(srv.url, {
      signal: t.signal,
      reconnect: true,
      jitter: 0,
      maxRetryDelay: 8,
      onEvent: (e) => events.push(e.data),
      onDisconnect: (err, delay) => disconnects.push([err === null ? null : err.status ?? err.name, delay]),
    });
    assert.equal(last, "2");
    assert.deepEqual(events, ["a", "b"]);
    assert.deepEqual(disconnects, [
      [null, 1], // the end of an open stream: retry:
      [503, 1], // the first failure: still retry:
      [503, 2],
      [503, 4],
      [503, 8], // capped at maxRetryDelay
      [503, 8],
      ["TypeError", 1], // the stream of request 6 was open: back to retry:
      ["TypeError", 1],
      ["TypeError", 2],
    ]);
    assert.deepEqual(
      srv.requests.map((r) => r.headers["last-event-id"]),
      [undefined, "1", "1", "1", "1", "1", "1", "2", "2", "2"],
    );
  });

  test("every wait gets a spread from the random source, a Retry-After's included", { timeout: 10_000 }, async (t) => {
    const srv = await serve((req, res, n) => {
      if (n === 0) {
        sse(res);
        res.end("retry: 100\nid: 1\ndata: a\n\n");
      } else if (n === 1) {
        res.writeHead(429, { "Content-Type": "application/json", "Retry-After": "1" });
        res.end('{"error": "slow down"}');
      } else {
        res.writeHead(204);
        res.end();
      }
    });
    t.after(srv.close);
    const draws = [0.5, 0.25];
    const disconnects = [];
    // No jitter option: the default applies.
    await fetchEventSource(srv.url, {
      signal: t.signal,
      reconnect: true,
      random: () => draws.shift(),
      onDisconnect: (err, delay) => disconnects.push(delay),
    });
    assert.deepEqual(draws, [], "one draw per wait");
    assert.deepEqual(disconnects, [100 + 100 * DEFAULT_JITTER * 0.5, 1000 + 1000 * DEFAULT_JITTER * 0.25]);
  });
});

// waiter lets a test wait on callbacks: until(predicate) resolves once
// predicate() holds, checked at once and on every check().
function waiter() {
  const waits = [];
  return {
    check() {
      for (const w of [...waits]) {
        if (w.predicate()) {
          waits.splice(waits.indexOf(w), 1);
          w.resolve();
        }
      }
    },
    until(predicate) {
      return new Promise((resolve) => {
        waits.push({ predicate, resolve });
        this.check();
      });
    },
  };
}

describe("fetchEventSource: idle watchdog", { timeout: 20_000 }, () => {
  test("idleTimeout aborts a stalled response and reconnects with Last-Event-ID", async (t) => {
    let stalledClosed;
    const srv = await serve((req, res, n) => {
      if (n === 0) {
        // Headers and one event, then nothing: a half-open connection.
        sse(res);
        res.write("retry: 1\nid: 1\ndata: a\n\n");
        stalledClosed = once(res, "close");
      } else if (n === 1) {
        sse(res);
        res.end("id: 2\ndata: b\n\n");
      } else {
        res.writeHead(204);
        res.end();
      }
    });
    t.after(srv.close);
    // Mock timers: the idle time passes once the first event came, however
    // slow the machine is to get there, and each wait for retry: once the
    // test has seen its disconnect.
    t.mock.timers.enable({ apis: ["setTimeout"] });
    const w = waiter();
    const events = [];
    const disconnects = [];
    const done = fetchEventSource(srv.url, {
      signal: t.signal,
      reconnect: true,
      jitter: 0,
      idleTimeout: 100,
      onEvent: (e) => (events.push(e.data), w.check()),
      onDisconnect: (err, delay) => (disconnects.push([err === null ? null : err.name, delay]), w.check()),
    });
    await w.until(() => events.length === 1 || disconnects.length > 0);
    t.mock.timers.tick(99);
    await new Promise(setImmediate);
    assert.deepEqual(disconnects, [], "cut before idleTimeout had passed");
    t.mock.timers.tick(1);
    await w.until(() => disconnects.length === 1);
    t.mock.timers.tick(1); // retry: 1
    await w.until(() => disconnects.length === 2);
    t.mock.timers.tick(1);
    const last = await done;
    assert.equal(last, "2");
    assert.deepEqual(events, ["a", "b"]);
    // The stream was open: the timeout reconnects after retry:, no back-off.
    assert.deepEqual(disconnects, [
      ["TimeoutError", 1],
      [null, 1],
    ]);
    assert.deepEqual(
      srv.requests.map((r) => r.headers["last-event-id"]),
      [undefined, "1", "2"],
    );
    await stalledClosed; // the stalled request was really closed
    await fetchSocketsClosed(srv);
  });

  test("without reconnect, idleTimeout rejects with a TimeoutError, whether headers came or not", async (t) => {
    // Mock timers: the idle time passes once the headers came, or once the
    // request reached a server that never answers, however slow the
    // machine is to get there.
    const w = waiter();
    let asked = 0;
    const silent = await serve((req, res) => {
      sse(res);
      res.flushHeaders();
    });
    t.after(silent.close);
    const noAnswer = await serve(() => (asked++, w.check()));
    t.after(noAnswer.close);
    t.mock.timers.enable({ apis: ["setTimeout"] });
    for (const srv of [silent, noAnswer]) {
      let opened = 0;
      const settled = { error: null };
      const done = fetchEventSource(srv.url, { idleTimeout: 50, onOpen: () => (opened++, w.check()) }).then(
        () => ((settled.error = "resolved"), w.check()),
        (err) => ((settled.error = err), w.check()),
      );
      await w.until(() => (srv === silent ? opened === 1 : asked === 1) || settled.error !== null);
      assert.equal(settled.error, null, "settled before the idle time passed");
      t.mock.timers.tick(49);
      await new Promise(setImmediate);
      assert.equal(settled.error, null, "cut before idleTimeout had passed");
      t.mock.timers.tick(1);
      await done;
      assert.equal(settled.error?.name, "TimeoutError", String(settled.error));
      assert.equal(settled.error.message, "no bytes for 50 ms");
      assert.equal(opened, srv === silent ? 1 : 0);
    }
    await fetchSocketsClosed(silent, noAnswer);
  });

  test("comments reset the watchdog: a heartbeat keeps a quiet stream", async (t) => {
    let stream;
    const srv = await serve((req, res) => {
      sse(res);
      res.write("id: 1\ndata: a\n\n");
      stream = res;
    });
    t.after(srv.close);
    t.mock.timers.enable({ apis: ["setTimeout"] });
    const got = { events: 0, comments: 0, settled: null };
    const w = waiter();
    const done = fetchEventSource(srv.url, {
      idleTimeout: 1000,
      onEvent: () => (got.events++, w.check()),
      onComment: () => (got.comments++, w.check()),
    }).then(
      () => (got.settled = "resolved"),
      (err) => (got.settled = err.name),
    );
    await w.until(() => got.events === 1);
    for (let i = 1; i <= 3; i++) {
      t.mock.timers.tick(900);
      stream.write(": heartbeat\n\n");
      await w.until(() => got.comments === i);
    }
    // 2700 ms since the event, 0 since the last heartbeat.
    t.mock.timers.tick(999);
    await new Promise(setImmediate);
    assert.equal(got.settled, null, "cut before idleTimeout had passed");
    t.mock.timers.tick(1);
    await done;
    assert.equal(got.settled, "TimeoutError");
    assert.equal(srv.requests.length, 1);
    await fetchSocketsClosed(srv);
  });
});

// exitsCleanly runs script, an ES module, in a child node process and
// resolves to its stdout once it exits by itself; a timer or a request
// left running keeps it alive, and it is killed after timeoutMs.
function exitsCleanly(script, timeoutMs = 10_000) {
  return new Promise((resolve, reject) => {
    const args = ["--input-type=module", "--eval", script];
    execFile(process.execPath, args, { timeout: timeoutMs, killSignal: "SIGKILL" }, (err, stdout, stderr) => {
      if (err) reject(new Error(`${err.killed ? "did not exit" : err.message}\n${stdout}${stderr}`));
      else resolve(stdout);
    });
  });
}

describe("fetchEventSource: cleanup", { timeout: 30_000 }, () => {
  test("no timer is left after an abort, a timeout, an error or an end: the process exits", { timeout: 15_000 }, async () => {
    // Every timer here is ten minutes long: one left running keeps the
    // child alive far past exitsCleanly's limit.
    const script = `
      import http from "node:http";
      import { once } from "node:events";
      import { fetchEventSource } from ${JSON.stringify(new URL("./sse-client.js", import.meta.url).href)};

      const server = http.createServer((req, res) => {
        const path = new URL(req.url, "http://x").pathname;
        if (path === "/error") {
          res.writeHead(400, { "Content-Type": "application/json" });
          res.end('{"error": "no"}');
          return;
        }
        res.writeHead(200, { "Content-Type": "text/event-stream" });
        if (path === "/end") res.end("id: 1\\ndata: a\\n\\n");
        else if (path === "/stall") res.write("id: 1\\ndata: a\\n\\n");
      });
      server.listen(0, "127.0.0.1");
      await once(server, "listening");
      const url = "http://127.0.0.1:" + server.address().port;
      const long = { idleTimeout: 600_000, retryDelay: 600_000 };
      const outcome = (p) => p.then((v) => "resolved " + v, (err) => "rejected " + err.name);
      const results = [];

      // Aborted while streaming.
      let ctrl = new AbortController();
      results.push(await outcome(fetchEventSource(url + "/stall", { ...long, signal: ctrl.signal, reconnect: true, onEvent: () => ctrl.abort() })));
      // Aborted while waiting to reconnect.
      ctrl = new AbortController();
      results.push(await outcome(fetchEventSource(url + "/end", { ...long, signal: ctrl.signal, reconnect: true, onDisconnect: () => ctrl.abort() })));
      // Aborted from onEvent on the last event of a body that is complete.
      ctrl = new AbortController();
      results.push(await outcome(fetchEventSource(url + "/end", { ...long, signal: ctrl.signal, reconnect: true, onEvent: () => ctrl.abort() })));
      // Cut by the watchdog, without reconnect.
      results.push(await outcome(fetchEventSource(url + "/stall", { idleTimeout: 20 })));
      // An error answer, and a stream that ends, without reconnect.
      results.push(await outcome(fetchEventSource(url + "/error", long)));
      results.push(await outcome(fetchEventSource(url + "/end", long)));
      server.closeAllConnections();
      server.close();
      console.log(results.join("\\n"));
    `;
    const out = await exitsCleanly(script);
    assert.deepEqual(out.trim().split("\n"), [
      "rejected AbortError",
      "rejected AbortError",
      "rejected AbortError",
      "rejected TimeoutError",
      "rejected SSEResponseError",
      "resolved 1",
    ]);
  });
});
