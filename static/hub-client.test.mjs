// Tests of hub-client.js with node's built-in runner: `node --test static/`.
// HubConnection and publish run against a node:http server that speaks the
// hub's wire protocol: ids in publish order, replay after Last-Event-ID (or
// the last_event_id query), event: reset for an id it cannot resume from.
import { test, describe } from "node:test";
import assert from "node:assert/strict";
import http from "node:http";
import net from "node:net";
import { once } from "node:events";
import { execFile } from "node:child_process";

import {
  HUB_HEARTBEAT_MS,
  HUB_IDLE_TIMEOUT_MS,
  HubConnection,
  UNREACHABLE_COMMENT,
  parseTopics,
  publish,
  publishBody,
  publishURL,
  subscribeURL,
} from "./hub-client.js";

describe("helpers", () => {
  test("parseTopics splits on commas and white space, drops empties and duplicates", () => {
    assert.deepEqual(parseTopics(" demo.>, news.*  news.*,,\tx "), ["demo.>", "news.*", "x"]);
    assert.deepEqual(parseTopics(" , "), []);
  });

  test("subscribeURL is relative to the page and carries a stored id in the query", () => {
    const page = "http://h.test:8111/demo/index.html?x=1";
    assert.equal(
      subscribeURL(page, ["a.*", "b.>"]).href,
      "http://h.test:8111/demo/api/v1/events?topic=a.*&topic=b.%3E",
    );
    assert.equal(
      subscribeURL("http://h.test/", ["a"], { lastEventId: "42" }).href,
      "http://h.test/api/v1/events?topic=a&last_event_id=42",
    );
  });

  test("publishURL puts the topic in the path", () => {
    assert.equal(publishURL("http://h.test/", "demo.chat").href, "http://h.test/api/v1/topics/demo.chat/events");
  });

  test("publishBody sends JSON as JSON and other text as a JSON string", () => {
    assert.equal(publishBody("", '{"n": 1}'), '{"data":{"n":1}}');
    assert.equal(publishBody("tick", "42"), '{"event":"tick","data":42}');
    assert.equal(publishBody("", '"quoted"'), '{"data":"quoted"}');
    assert.equal(publishBody("", "hello {world"), '{"data":"hello {world"}');
    assert.equal(publishBody("", ""), '{"data":""}');
  });

  test("publishBody sends JSON as typed: numbers beyond a double's precision or range keep their digits", () => {
    assert.equal(
      publishBody("", '{"order": 12345678901234567890, "price": 1.10, "big": 1e400}'),
      '{"data":{"order":12345678901234567890,"price":1.10,"big":1e400}}',
    );
    assert.equal(publishBody("n", " 9007199254740993 "), '{"event":"n","data":9007199254740993}');
    // White space inside strings stays; only that between tokens goes.
    assert.equal(publishBody("", '{ "t" : "a  b\\" \\\\ }" ,\n "u": [ 1 , -0 ] }'), '{"data":{"t":"a  b\\" \\\\ }","u":[1,-0]}}');
  });
});

// hubServer starts a small hub on loopback: GET /api/v1/events streams the
// events after the id it is given, then live ones; publish(data, type) adds
// one. Ids are numbers from 1; an id above the newest gets event: reset.
// A live-only stream starts with its position, an event of its own.
// status, when set, answers subscriptions with that JSON error instead;
// standIn, when true, with the README nginx recipe's stand-in for a hub out
// of reach: its comment and retry:, and the end. It sends no heartbeats.
async function hubServer({ retry = 600_000 } = {}) {
  const events = [];
  const live = new Set();
  const requests = [];
  const frame = (e) => `id: ${e.id}\n${e.type ? `event: ${e.type}\n` : ""}data: ${e.data}\n\n`;
  const hub = {
    requests,
    status: 0,
    standIn: false,
    error: 'topic "a..b": invalid topic',
    // say writes frameText on every open stream, and resolves once each of
    // them has been closed by its client.
    say(frameText) {
      const closed = [...live].map((res) => once(res, "close"));
      for (const res of live) res.write(frameText);
      return Promise.all(closed);
    },
    publish(data, type = "") {
      const e = { id: events.length + 1, type, data };
      events.push(e);
      for (const res of live) res.write(frame(e));
    },
    // endStreams ends every open stream cleanly, as a server shutdown does.
    endStreams() {
      for (const res of live) res.end();
      live.clear();
    },
  };
  const server = http.createServer((req, res) => {
    const url = new URL(req.url, "http://x");
    requests.push({ url, headers: req.headers });
    if (hub.status !== 0) {
      res.writeHead(hub.status, { "Content-Type": "application/json" });
      res.end(JSON.stringify({ error: hub.error }));
      return;
    }
    if (hub.standIn) {
      res.writeHead(200, { "Content-Type": "text/event-stream" });
      res.end(`: ${UNREACHABLE_COMMENT}\nretry: ${retry}\n\n`);
      return;
    }
    const last = req.headers["last-event-id"] ?? url.searchParams.get("last_event_id") ?? "";
    res.writeHead(200, { "Content-Type": "text/event-stream; charset=utf-8" });
    let out = `retry: ${retry}\n\n`;
    let after = last === "" ? events.length : Number(last);
    // As the hub does, a stream without a position to resume from starts
    // with one: a position event, or the reset's id.
    if (last === "") out += `id: ${after}\nevent: position\ndata\n\n`;
    if (!(after <= events.length)) {
      after = events.length;
      out += `id: ${after}\nevent: reset\ndata: event id ${last} is unknown\n\n`;
    }
    for (const e of events.slice(after)) out += frame(e);
    res.write(out);
    live.add(res);
    res.on("close", () => live.delete(res));
  });
  server.listen(0, "127.0.0.1");
  await once(server, "listening");
  hub.url = `http://127.0.0.1:${server.address().port}/`;
  hub.close = () => {
    server.closeAllConnections();
    server.close();
  };
  return hub;
}

// record returns HubConnection callbacks that record what they see, and
// until(predicate), which resolves once predicate(got) holds.
function record() {
  const got = { states: [], events: [], resets: [], resumes: [], lastIds: [], expired: [], errors: [], waits: [] };
  const waiters = [];
  const check = () => {
    for (const w of [...waiters]) {
      if (w.predicate(got)) {
        waiters.splice(waiters.indexOf(w), 1);
        w.resolve();
      }
    }
  };
  const push = (list) => (v) => {
    list.push(v);
    check();
  };
  return {
    got,
    callbacks: {
      onState: push(got.states),
      onEvent: push(got.events),
      onReset: push(got.resets),
      onResume: push(got.resumes),
      onLastEventId: push(got.lastIds),
      onExpired: push(got.expired),
      onError: push(got.errors),
      onDisconnect: (error, delayMs) => push(got.waits)(delayMs),
    },
    until(predicate) {
      return new Promise((resolve) => {
        waiters.push({ predicate, resolve });
        check();
      });
    },
  };
}

const state = (g) => g.states.at(-1);
const ids = (g) => g.events.map((e) => e.id);

describe("HubConnection", { timeout: 10_000 }, () => {
  test("subscribes, receives events in order and tracks the last id", async (t) => {
    const hub = await hubServer();
    t.after(hub.close);
    hub.publish("before");
    const r = record();
    const conn = new HubConnection({ base: hub.url, topics: ["demo.>", "news.*"], ...r.callbacks });
    t.after(() => conn.close());
    assert.equal(conn.state, "idle");
    conn.connect();
    await r.until((g) => state(g) === "open");
    hub.publish("one");
    hub.publish('{"n":2}', "tick");
    await r.until((g) => g.events.length === 2);
    // Event 1 was published before the subscription: a live subscription
    // starts after it.
    assert.deepEqual(r.got.events, [
      { id: "2", type: "message", data: "one" },
      { id: "3", type: "tick", data: '{"n":2}' },
    ]);
    assert.deepEqual(r.got.states, ["connecting", "open"]);
    // The stream's position (after event 1) first, then each event's id.
    assert.deepEqual(r.got.lastIds, ["1", "2", "3"]);
    assert.equal(conn.lastEventId, "3");
    assert.equal(conn.retryMs, 600_000);
    assert.deepEqual(r.got.resumes, []);
    const [req] = hub.requests;
    assert.deepEqual(req.url.searchParams.getAll("topic"), ["demo.>", "news.*"]);
    assert.equal(req.url.searchParams.get("last_event_id"), null);
    assert.equal(req.headers["last-event-id"], undefined);
  });

  test("drop keeps the id; resume gets what was published meanwhile, once each", async (t) => {
    const hub = await hubServer();
    t.after(hub.close);
    const r = record();
    const conn = new HubConnection({ base: hub.url, topics: ["demo.>"], ...r.callbacks });
    t.after(() => conn.close());
    conn.connect();
    await r.until((g) => state(g) === "open");
    for (const d of ["a", "b", "c"]) hub.publish(d);
    await r.until((g) => g.events.length === 3);
    conn.drop();
    assert.equal(conn.state, "reconnecting");
    // The server's retry is ten minutes: only resume() can reconnect in time.
    for (const d of ["d", "e"]) hub.publish(d);
    conn.resume();
    await r.until((g) => g.events.length === 5 && state(g) === "open");
    hub.publish("f");
    await r.until((g) => g.events.length === 6);
    assert.deepEqual(ids(r.got), ["1", "2", "3", "4", "5", "6"]);
    assert.deepEqual(r.got.events.map((e) => e.data), ["a", "b", "c", "d", "e", "f"]);
    assert.deepEqual(r.got.resumes, ["3"]);
    assert.deepEqual(r.got.states, ["connecting", "open", "reconnecting", "connecting", "open"]);
    assert.equal(hub.requests.length, 2);
    assert.equal(hub.requests[1].headers["last-event-id"], "3");
  });

  test("drop reconnects by itself after the server's retry time", async (t) => {
    const hub = await hubServer({ retry: 5 });
    t.after(hub.close);
    const r = record();
    const conn = new HubConnection({ base: hub.url, topics: ["x"], ...r.callbacks });
    t.after(() => conn.close());
    conn.connect();
    await r.until((g) => state(g) === "open");
    hub.publish("a");
    await r.until((g) => g.events.length === 1);
    conn.drop();
    hub.publish("b");
    await r.until((g) => g.events.length === 2);
    assert.deepEqual(ids(r.got), ["1", "2"]);
    assert.deepEqual(r.got.resumes, ["1"]);
    assert.equal(conn.retryMs, 5);
  });

  test("a stream the server ends is resumed with Last-Event-ID", async (t) => {
    const hub = await hubServer({ retry: 1 });
    t.after(hub.close);
    const r = record();
    const conn = new HubConnection({ base: hub.url, topics: ["x"], ...r.callbacks });
    t.after(() => conn.close());
    conn.connect();
    await r.until((g) => state(g) === "open");
    hub.publish("a");
    await r.until((g) => g.events.length === 1);
    hub.endStreams();
    hub.publish("b"); // no stream is open: only replay delivers it
    await r.until((g) => g.events.length === 2);
    assert.deepEqual(ids(r.got), ["1", "2"]);
    assert.deepEqual(r.got.resumes, ["1"]);
    assert.ok(r.got.states.includes("reconnecting"), r.got.states.join());
    assert.equal(hub.requests[1].headers["last-event-id"], "1");
  });

  test("a stored id resumes the first connect with the last_event_id query", async (t) => {
    const hub = await hubServer({ retry: 1 });
    t.after(hub.close);
    for (const d of ["a", "b", "c"]) hub.publish(d);
    const r = record();
    const conn = new HubConnection({ base: hub.url, topics: ["x"], lastEventId: "1", ...r.callbacks });
    t.after(() => conn.close());
    conn.connect();
    await r.until((g) => g.events.length === 2);
    assert.deepEqual(ids(r.got), ["2", "3"]);
    assert.deepEqual(r.got.resumes, ["1"]);
    assert.equal(hub.requests[0].url.searchParams.get("last_event_id"), "1");
    assert.equal(hub.requests[0].headers["last-event-id"], undefined);
    // A later reconnect sends the newer id in the header, which wins.
    hub.endStreams();
    hub.publish("d");
    await r.until((g) => g.events.length === 3);
    assert.equal(hub.requests[1].headers["last-event-id"], "3");
    assert.deepEqual(ids(r.got), ["2", "3", "4"]);
  });

  test("a live-only stream's position is kept: a drop before any event resumes from it", async (t) => {
    const hub = await hubServer();
    t.after(hub.close);
    hub.publish("before");
    const r = record();
    const conn = new HubConnection({ base: hub.url, topics: ["x"], ...r.callbacks });
    t.after(() => conn.close());
    conn.connect();
    await r.until((g) => g.lastIds.length === 1 && state(g) === "open");
    assert.deepEqual(r.got.lastIds, ["1"]);
    conn.drop();
    hub.publish("while away");
    conn.resume();
    await r.until((g) => g.events.length === 1);
    assert.deepEqual(r.got.events, [{ id: "2", type: "message", data: "while away" }]);
    assert.equal(hub.requests[1].headers["last-event-id"], "1");
  });

  test("a reset is reported and the live events after it are kept", async (t) => {
    const hub = await hubServer();
    t.after(hub.close);
    const r = record();
    const conn = new HubConnection({ base: hub.url, topics: ["x"], lastEventId: "99", ...r.callbacks });
    t.after(() => conn.close());
    conn.connect();
    await r.until((g) => g.resets.length === 1 && state(g) === "open");
    assert.deepEqual(r.got.resets, ["event id 99 is unknown"]);
    // The reset's id: where the stream goes on from.
    assert.equal(conn.lastEventId, "0");
    hub.publish("live");
    await r.until((g) => g.events.length === 1);
    assert.deepEqual(r.got.events, [{ id: "1", type: "message", data: "live" }]);
    assert.equal(conn.lastEventId, "1");
  });

  test("an error answer is the state, with the server's message", async (t) => {
    const hub = await hubServer();
    t.after(hub.close);
    hub.status = 400;
    const r = record();
    const conn = new HubConnection({ base: hub.url, topics: ["a..b"], token: "s3cret", ...r.callbacks });
    conn.connect();
    await r.until((g) => state(g).startsWith("error"));
    assert.equal(conn.state, 'error: HTTP 400: topic "a..b": invalid topic');
    assert.equal(hub.requests[0].headers.authorization, "Bearer s3cret");
    // Drop and resume do nothing when there is no stream.
    conn.drop();
    conn.resume();
    assert.equal(hub.requests.length, 1);
  });

  test("a topic the token does not grant: the 403's reason reaches onError", async (t) => {
    const hub = await hubServer();
    t.after(hub.close);
    hub.status = 403;
    hub.error = 'subscribing to "user.43.x": not granted by the token';
    const r = record();
    const conn = new HubConnection({ base: hub.url, topics: ["user.42.>", "user.43.x"], token: "eyJ.a.b", ...r.callbacks });
    conn.connect();
    await r.until((g) => g.errors.length === 1);
    assert.deepEqual(r.got.errors, [{ status: 403, error: 'subscribing to "user.43.x": not granted by the token' }]);
    assert.equal(conn.state, 'error: HTTP 403: subscribing to "user.43.x": not granted by the token');
    assert.equal(hub.requests[0].headers.authorization, "Bearer eyJ.a.b");
  });

  test("an expired token ends the stream: no reconnect with it, a fresh one resumes", async (t) => {
    const hub = await hubServer({ retry: 1 });
    t.after(hub.close);
    const r = record();
    const conn = new HubConnection({ base: hub.url, topics: ["a"], token: "old", ...r.callbacks });
    t.after(() => conn.close());
    conn.connect();
    await r.until((g) => state(g) === "open");
    hub.publish("one");
    await r.until((g) => g.events.length === 1);
    // The hub ends the stream after its expired event; this one leaves it
    // open: the client must let go of it itself, and then has nothing left
    // that could reconnect (a stream it read to the end would be followed
    // by a reconnect after retry: 1, an open one by nothing).
    await hub.say("event: expired\ndata: 2000-01-01T00:01:00Z\n\n");
    assert.deepEqual(r.got.expired, ["2000-01-01T00:01:00Z"]);
    assert.equal(conn.state, "expired");
    hub.publish("two");
    assert.equal(hub.requests.length, 1, "reconnected with the expired token");
    assert.deepEqual(r.got.events.map((e) => e.data), ["one"]);
    // A fresh token: a new connection resumes after the last id.
    const r2 = record();
    const fresh = new HubConnection({ base: hub.url, topics: ["a"], token: "new", lastEventId: conn.lastEventId, ...r2.callbacks });
    t.after(() => fresh.close());
    fresh.connect();
    await r2.until((g) => g.events.length === 1);
    assert.deepEqual(r2.got.events, [{ id: "2", type: "message", data: "two" }]);
    assert.equal(hub.requests[1].headers.authorization, "Bearer new");
  });

  test("a proxy's stand-in for a hub out of reach is unreachable, not open, until the hub answers again", async (t) => {
    const hub = await hubServer({ retry: 5 });
    t.after(hub.close);
    const r = record();
    const conn = new HubConnection({ base: hub.url, topics: ["x"], jitter: 0, ...r.callbacks });
    t.after(() => conn.close());
    conn.connect();
    await r.until((g) => state(g) === "open");
    hub.publish("a");
    await r.until((g) => g.events.length === 1);
    // The hub goes away: the proxy ends its stream and answers each
    // reconnect with its stand-in.
    hub.standIn = true;
    hub.endStreams();
    await r.until(() => hub.requests.length >= 5);
    assert.equal(conn.state, "unreachable");
    // resume() tries again at once, and the answer is still not open.
    const before = hub.requests.length;
    conn.resume();
    await r.until(() => hub.requests.length > before + 1);
    assert.equal(conn.state, "unreachable");
    hub.standIn = false;
    hub.publish("b"); // published while away: replay delivers it
    await r.until((g) => g.events.length === 2 && state(g) === "open");
    assert.deepEqual(ids(r.got), ["1", "2"]);
    // The first stand-in is open until its comment, which comes with it;
    // once known, no stand-in is open, nor a resume: only the hub's own
    // streams are.
    const states = r.got.states.filter((s, i, all) => s !== all[i - 1]);
    assert.deepEqual(states, ["connecting", "open", "reconnecting", "open", "unreachable", "connecting", "unreachable", "open"]);
    assert.deepEqual(r.got.resumes, ["1", "1"]);
    assert.equal(hub.requests.at(-1).headers["last-event-id"], "1");
  });

  test("a stand-in on the first connect is unreachable too, and a comment of the hub's is open", async (t) => {
    const hub = await hubServer({ retry: 5 });
    t.after(hub.close);
    hub.standIn = true;
    const r = record();
    const conn = new HubConnection({ base: hub.url, topics: ["x"], jitter: 0, ...r.callbacks });
    t.after(() => conn.close());
    conn.connect();
    await r.until(() => hub.requests.length >= 3);
    assert.equal(conn.state, "unreachable");
    assert.equal(conn.retryMs, 5);
    conn.close();
    // A hub's heartbeat, or any comment but the stand-in's, is not one.
    const other = http.createServer((req, res) => {
      res.writeHead(200, { "Content-Type": "text/event-stream" });
      res.write(": heartbeat\n\n");
    });
    other.listen(0, "127.0.0.1");
    await once(other, "listening");
    t.after(() => {
      other.closeAllConnections();
      other.close();
    });
    const r2 = record();
    const conn2 = new HubConnection({ base: `http://127.0.0.1:${other.address().port}/`, topics: ["x"], ...r2.callbacks });
    t.after(() => conn2.close());
    conn2.connect();
    await r2.until((g) => state(g) === "open");
    assert.deepEqual(r2.got.states, ["connecting", "open"]);
  });

  test("stand-ins in a row back off: a stand-in with retry: 0 is not asked again at network speed", async (t) => {
    // A stand-in says something (its comment), which resets the back-off
    // of sse-client.js: each was asked again after its retry: alone, so
    // one with retry: 0 was asked again at once, for good.
    const hub = await hubServer({ retry: 0 });
    t.after(hub.close);
    hub.standIn = true;
    const r = record();
    const waits = [];
    let sixth;
    const six = new Promise((resolve) => (sixth = resolve));
    const conn = new HubConnection({
      base: hub.url,
      topics: ["x"],
      jitter: 0,
      ...r.callbacks,
      onDisconnect(error, delayMs) {
        waits.push([error, delayMs, hub.requests.length]);
        if (waits.length === 6) (conn.close(), sixth());
      },
    });
    t.after(() => conn.close());
    conn.connect();
    await six;
    // The first wait is the retry: time, the next double from 1 ms, as
    // for failed attempts, and one request was made per wait.
    assert.deepEqual(waits, [
      [null, 0, 1],
      [null, 2, 2],
      [null, 4, 3],
      [null, 8, 4],
      [null, 16, 5],
      [null, 32, 6],
    ]);
    assert.deepEqual([...new Set(r.got.states)], ["connecting", "open", "unreachable", "closed"]);
    // Capped at DEFAULT_RETRY_MS, or the retry: time when longer: the
    // panel sees the hub back within that. resume() tries at once, and
    // keeps the back-off.
    const capped = await hubServer({ retry: 1000 });
    t.after(capped.close);
    capped.standIn = true;
    const delays = [];
    let fifth;
    const five = new Promise((resolve) => (fifth = resolve));
    const c2 = new HubConnection({
      base: capped.url,
      topics: ["x"],
      jitter: 0,
      onDisconnect(error, delayMs) {
        delays.push(delayMs);
        if (delays.length === 5) (c2.close(), fifth());
        else c2.resume();
      },
    });
    t.after(() => c2.close());
    c2.connect();
    await five;
    assert.deepEqual(delays, [1000, 2000, 3000, 3000, 3000]);
    // A stream of the hub's ends the back-off: a stand-in after it waits
    // its retry: again.
    const r3 = record();
    const c3 = new HubConnection({ base: capped.url, topics: ["x"], jitter: 0, ...r3.callbacks });
    t.after(() => c3.close());
    c3.connect();
    await r3.until((g) => g.waits.length === 1);
    c3.resume();
    await r3.until((g) => g.waits.length === 2);
    capped.standIn = false;
    c3.resume();
    await r3.until((g) => state(g) === "open");
    capped.standIn = true;
    capped.endStreams();
    await r3.until((g) => g.waits.length === 3);
    c3.resume();
    await r3.until((g) => g.waits.length === 4);
    c3.close();
    assert.deepEqual(r3.got.waits, [1000, 2000, 1000, 1000]);
  });

  test("close ends the request and stays closed", async (t) => {
    const hub = await hubServer({ retry: 1 });
    t.after(hub.close);
    const r = record();
    const conn = new HubConnection({ base: hub.url, topics: ["x"], ...r.callbacks });
    conn.connect();
    await r.until((g) => state(g) === "open");
    conn.close();
    assert.equal(conn.state, "closed");
    hub.publish("after close");
    // A new connection proves the hub is live; the closed one saw nothing.
    const r2 = record();
    const other = new HubConnection({ base: hub.url, topics: ["x"], lastEventId: "0", ...r2.callbacks });
    t.after(() => other.close());
    other.connect();
    await r2.until((g) => g.events.length === 1);
    assert.deepEqual(r.got.events, []);
    assert.equal(conn.state, "closed");
    assert.equal(hub.requests.length, 2);
  });

  test("onDisconnect says why an attempt failed and how long until the next, null for a stream's end", async (t) => {
    // A server that resets every connection it accepts: each attempt
    // fails as a network error, which is also how a CORS refusal looks to
    // a page. (A port closed to be refused could be taken by another
    // process in between.)
    const gone = net.createServer((socket) => socket.resetAndDestroy());
    gone.listen(0, "127.0.0.1");
    await once(gone, "listening");
    t.after(() => gone.close());
    const { port } = gone.address();
    const seen = [];
    let disconnected;
    const first = new Promise((resolve) => (disconnected = resolve));
    const conn = new HubConnection({
      base: `http://127.0.0.1:${port}/`,
      topics: ["x"],
      jitter: 0,
      onDisconnect(error, delayMs) {
        seen.push({ error, delayMs, state: conn.state });
        disconnected();
      },
    });
    t.after(() => conn.close());
    conn.connect();
    await first;
    conn.close();
    assert.equal(seen.length, 1);
    assert.ok(seen[0].error instanceof TypeError, `error ${seen[0].error}`);
    assert.equal(seen[0].delayMs, 3000, "the default retry time");
    assert.equal(seen[0].state, "reconnecting");

    // A stream the hub ends: nothing failed.
    const hub = await hubServer({ retry: 600_000 });
    t.after(hub.close);
    const r = record();
    const ends = [];
    const live = new HubConnection({ base: hub.url, topics: ["x"], jitter: 0, ...r.callbacks, onDisconnect: (error, delayMs) => ends.push({ error, delayMs }) });
    t.after(() => live.close());
    live.connect();
    await r.until((g) => state(g) === "open");
    hub.endStreams();
    await r.until((g) => state(g) === "reconnecting");
    assert.deepEqual(ends, [{ error: null, delayMs: 600_000 }]);
  });
});

describe("publish", { timeout: 10_000 }, () => {
  // publishServer answers every request with status and body, recording it.
  async function publishServer(status, body) {
    const requests = [];
    const server = http.createServer((req, res) => {
      let text = "";
      req.setEncoding("utf8");
      req.on("data", (s) => (text += s));
      req.on("end", () => {
        requests.push({ method: req.method, url: req.url, headers: req.headers, body: text });
        res.writeHead(status, { "Content-Type": "application/json" });
        res.end(body);
      });
    });
    server.listen(0, "127.0.0.1");
    await once(server, "listening");
    return {
      url: `http://127.0.0.1:${server.address().port}/`,
      requests,
      close: () => server.close(),
    };
  }

  test("a 201 answer gives the id", async (t) => {
    const srv = await publishServer(201, '{"id":"17","topic":"demo.chat"}');
    t.after(srv.close);
    const r = await publish(srv.url, { topic: "demo.chat", token: "t0ken", event: "chat", data: "hi there" });
    assert.deepEqual(r, { ok: true, id: "17", topic: "demo.chat" });
    const [req] = srv.requests;
    assert.equal(req.method, "POST");
    assert.equal(req.url, "/api/v1/topics/demo.chat/events");
    assert.equal(req.headers.authorization, "Bearer t0ken");
    assert.equal(req.headers["content-type"], "application/json");
    assert.equal(req.body, '{"event":"chat","data":"hi there"}');
  });

  test("an error answer gives the status and the server's message", async (t) => {
    const srv = await publishServer(401, '{"error":"a valid bearer token is required"}');
    t.after(srv.close);
    const r = await publish(srv.url, { topic: "demo.chat", token: "", data: "{}" });
    assert.deepEqual(r, { ok: false, status: 401, error: "a valid bearer token is required" });
    assert.equal(srv.requests[0].headers.authorization, undefined);
  });

  test("an error answer that is not JSON gives the status text", async (t) => {
    const srv = await publishServer(502, "<html>");
    t.after(srv.close);
    const r = await publish(srv.url, { topic: "t", token: "x", data: "1" });
    assert.deepEqual(r, { ok: false, status: 502, error: "Bad Gateway" });
  });

  test("a refused connection rejects", async () => {
    const srv = await publishServer(201, "{}");
    srv.close();
    await assert.rejects(publish(srv.url, { topic: "t", token: "x", data: "1" }), TypeError);
  });
});

describe("HubConnection: idle watchdog", { timeout: 10_000 }, () => {
  test("is on by default, at two and a half of the hub's default heartbeat", () => {
    assert.equal(HUB_HEARTBEAT_MS, 15_000, "ssehub's default stream.heartbeat_interval");
    assert.equal(HUB_IDLE_TIMEOUT_MS, 37_500);
  });

  test("a connection silent for the idle timeout is cut and resumes with Last-Event-ID", async (t) => {
    const hub = await hubServer({ retry: 1 });
    t.after(hub.close);
    t.mock.timers.enable({ apis: ["setTimeout"] });
    const r = record();
    // No idleTimeout option: the default applies. jitter 0 makes the
    // reconnect wait exactly retry: 1.
    const conn = new HubConnection({ base: hub.url, topics: ["x"], jitter: 0, ...r.callbacks });
    t.after(() => conn.close());
    conn.connect();
    await r.until((g) => state(g) === "open");
    hub.publish("a");
    await r.until((g) => g.events.length === 1);
    // The test's hub sends no heartbeat: the timeout runs from event a.
    t.mock.timers.tick(HUB_IDLE_TIMEOUT_MS - 1);
    await new Promise(setImmediate);
    assert.equal(conn.state, "open");
    assert.equal(hub.requests.length, 1);
    t.mock.timers.tick(1);
    await r.until((g) => state(g) === "reconnecting");
    hub.publish("b"); // published while away: replay delivers it
    t.mock.timers.tick(1);
    await r.until((g) => g.events.length === 2 && state(g) === "open");
    assert.deepEqual(ids(r.got), ["1", "2"]);
    assert.deepEqual(r.got.resumes, ["1"]);
    assert.deepEqual(r.got.states, ["connecting", "open", "reconnecting", "open"]);
    assert.equal(hub.requests[1].headers["last-event-id"], "1");
  });

  test("idleTimeout 0 turns it off", async (t) => {
    const hub = await hubServer({ retry: 1 });
    t.after(hub.close);
    t.mock.timers.enable({ apis: ["setTimeout"] });
    const r = record();
    const conn = new HubConnection({ base: hub.url, topics: ["x"], idleTimeout: 0, ...r.callbacks });
    t.after(() => conn.close());
    conn.connect();
    await r.until((g) => state(g) === "open");
    t.mock.timers.tick(3_600_000);
    await new Promise(setImmediate);
    assert.equal(conn.state, "open");
    assert.equal(hub.requests.length, 1);
  });

  test("close leaves no timer: the process exits", async () => {
    // The watchdog and the retry are ten minutes: a timer left running
    // keeps the child alive far past the limit.
    const script = `
      import http from "node:http";
      import { once } from "node:events";
      import { HubConnection } from ${JSON.stringify(new URL("./hub-client.js", import.meta.url).href)};

      const server = http.createServer((req, res) => {
        res.writeHead(200, { "Content-Type": "text/event-stream" });
        res.write("retry: 600000\\nid: 1\\ndata: a\\n\\n");
      });
      server.listen(0, "127.0.0.1");
      await once(server, "listening");
      const base = "http://127.0.0.1:" + server.address().port + "/";
      const states = [];
      await new Promise((resolve) => {
        const conn = new HubConnection({
          base,
          topics: ["x"],
          idleTimeout: 600_000,
          onState: (s) => states.push(s),
          onEvent: () => {
            // Drop (a reconnect timer), resume, then close for good.
            conn.drop();
            conn.resume();
            conn.close();
            resolve();
          },
        });
        conn.connect();
      });
      server.closeAllConnections();
      server.close();
      console.log(states.join(" "));
    `;
    const out = await new Promise((resolve, reject) => {
      const args = ["--input-type=module", "--eval", script];
      execFile(process.execPath, args, { timeout: 10_000, killSignal: "SIGKILL" }, (err, stdout, stderr) => {
        if (err) reject(new Error(`${err.killed ? "did not exit" : err.message}\n${stdout}${stderr}`));
        else resolve(stdout);
      });
    });
    assert.equal(out.trim(), "connecting open reconnecting connecting closed");
  });
});
