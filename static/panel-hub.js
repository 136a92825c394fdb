// panel-hub.js: the "Hub" panel. It subscribes to topic patterns over
// api/v1/events, publishes to a topic with a bearer token, and shows resume
// at work: "Drop connection" aborts the stream as a network failure would,
// and the panel reconnects with Last-Event-ID, so the events published
// meanwhile arrive after it, in order, none lost, none twice. The last id is
// kept in sessionStorage, for its hub: a reloaded page resumes with
// last_event_id, and a page opened on another hub (?hub=), which the panel
// names, starts afresh. A stream silent for longer than HubConnection's
// idle timeout (37.5 s, for the hub's default 15 s heartbeat) is cut and
// resumed the same way.
// Either token field takes a static token or a JWT (`ssehub token` mints
// one): a topic the JWT does not grant is refused with a 403 whose reason
// is shown, and a stream whose JWT expires ends with an `expired` line;
// Connect with a fresh token resumes after the last id. Behind the
// README's nginx recipe, nginx's stand-in for an ssehub out of reach is
// shown as "unreachable", not as "open", tried again after its retry: time
// (stand-ins in a row back off, up to 3 s or that time).
import { HubConnection, parseTopics, publish } from "./hub-client.js";
import { isLoopback } from "./panel-cross-origin.js";

const { ref, watch, onBeforeUnmount } = Vue;

const LAST_ID_KEY = "ssehub.hub.lastEventId";
const TOKEN_KEY = "ssehub.hub.token";

// PUBLISH_TIMEOUT_MS bounds a publish: a hub that takes the connection
// and never answers is named as such, not waited on for as long as the
// browser waits.
const PUBLISH_TIMEOUT_MS = 10_000;

// PROBE_TIMEOUT_MS bounds fetchFailure's request.
const PROBE_TIMEOUT_MS = 3000;

// MAX_LOG is how many entries the log keeps: anyone may publish to the demo
// topics, and a page left open must not grow without end.
const MAX_LOG = 500;

// hubBase is the hub's base URL: the page's ?hub= parameter (for a hub on
// another origin, or under another path), resolved against the page's URL
// as a relative link is, else the page's own URL.
function hubBase() {
  const param = new URLSearchParams(location.search).get("hub");
  if (!param) return location.href;
  const base = param.endsWith("/") ? param : `${param}/`;
  try {
    return new URL(base, location.href).href;
  } catch {
    return base; // not a URL: hubProblem says so
  }
}

// hubProblem says why base cannot be the hub's URL, "" when it can: a
// fetch fails on a URL of another scheme as on a network error, and so
// does one an https page may not make (mixed content), which the browser
// blocks before it leaves.
function hubProblem(base) {
  let hub = null;
  try {
    hub = new URL(base);
  } catch {
    // Not a URL.
  }
  if (hub === null || (hub.protocol !== "http:" && hub.protocol !== "https:")) {
    const param = new URLSearchParams(location.search).get("hub");
    return `?hub=${JSON.stringify(param)} is not an http:// or https:// URL, such as http://localhost:8111`;
  }
  if (location.protocol === "https:" && hub.protocol === "http:" && !isLoopback(hub.hostname)) {
    return `this page is https: the browser blocks requests to ${hub.origin} (mixed content); the hub needs an https:// URL (server.tls, or a TLS proxy in front)`;
  }
  return "";
}

// hubOrigin is the origin of the hub's base URL, resolved against the
// page's own (a ?hub= value may be relative, or not a URL at all: then the
// page's origin, where connecting will say what is wrong).
function hubOrigin(base) {
  try {
    return new URL(base, location.href).origin;
  } catch {
    return location.origin;
  }
}

// fetchFailure says why a request to the hub at base, a publish or a
// subscription, failed with no answer the page could read: err is fetch's
// TypeError, "Failed to fetch" whatever the cause. A request that CORS
// does not check (no-cors) tells them apart, as the Cross-origin panel's
// does: a hub on another origin that answers it refused this page's
// origin; one that answers nothing is out of reach.
async function fetchFailure(base, err) {
  const origin = hubOrigin(base);
  const answers = await fetch(base, { mode: "no-cors", cache: "no-store", signal: AbortSignal.timeout(PROBE_TIMEOUT_MS) }).then(
    () => true,
    () => false,
  );
  if (!answers) return `${err.message}: nothing answers at ${origin}`;
  if (origin === location.origin) return err.message;
  return `${err.message}: ${origin} answers, but refused this page's origin (CORS): its cors.allowed_origins (or SSEHUB_CORS_ALLOWED_ORIGINS) must list ${location.origin}`;
}

// hubEvents is the URL of the event stream of the hub at base, without a
// query: the hub a last event id belongs to.
function hubEvents(base) {
  try {
    return new URL("api/v1/events", base).href;
  } catch {
    return base;
  }
}

// hubName is the hub's base URL as the panel shows it, without the
// page's query and fragment: the server the subscription, and the tokens
// typed into the panel, go to.
function hubName(base) {
  try {
    const { origin, pathname } = new URL(base);
    return origin + pathname;
  } catch {
    return base;
  }
}

// stored reads a sessionStorage item; storage may be off.
function stored(key) {
  try {
    return sessionStorage.getItem(key) ?? "";
  } catch {
    return "";
  }
}

function store(key, value) {
  try {
    if (value === "") sessionStorage.removeItem(key);
    else sessionStorage.setItem(key, value);
  } catch {
    // Storage is off: the page still works, it only forgets on reload.
  }
}

export default {
  name: "HubPanel",
  setup() {
    const base = hubBase();
    const problem = hubProblem(base);
    const hub = hubName(base);
    const topics = ref("demo.>");
    const subToken = ref("");
    const state = ref("idle");
    // The last id is kept per hub: another hub cannot resume from it.
    const lastIdKey = `${LAST_ID_KEY}:${hubEvents(base)}`;
    const lastId = ref(stored(lastIdKey));
    const retryMs = ref(0);
    const resumes = ref(0);
    const log = ref([]); // { key, kind: "event" | "reset" | "resume" | "expired", id, type, data }
    const refusal = ref(""); // why the hub refused the subscription
    const failure = ref(""); // why the last attempt failed, while reconnecting
    const nextTry = ref(0); // the wait before the next attempt, in ms
    // The publish token is kept per hub: one typed for this page's own hub
    // is not offered to the hub a ?hub= link names.
    const tokenKey = `${TOKEN_KEY}:${hubOrigin(base)}`;
    const token = ref(stored(tokenKey));
    const pubTopic = ref("demo.chat");
    const pubEvent = ref("");
    const pubData = ref('{"text": "hello"}');
    const pubResult = ref("");
    const pubOK = ref(true);
    const pubCount = ref(0); // publish answers come, for tests to wait on
    let conn = null;
    let sends = 0; // Publish clicks: the answer to an earlier one is not shown over a later one's
    let disconnects = 0; // the subscription's failed attempts: an older one's cause is not shown over a newer one's
    let answered = false; // the subscription's current attempt got an answer

    watch(token, (t) => store(tokenKey, t));
    let entries = 0; // keys, as the oldest entries go
    const add = (entry) => {
      log.value.push({ key: entries++, ...entry });
      if (log.value.length > MAX_LOG) log.value.splice(0, log.value.length - MAX_LOG);
    };

    function connect() {
      conn?.close();
      refusal.value = "";
      if (problem !== "") {
        state.value = `error: ${problem}`;
        return;
      }
      const list = parseTopics(topics.value);
      if (list.length === 0) {
        state.value = "error: enter at least one topic pattern";
        return;
      }
      conn = new HubConnection({
        base,
        topics: list,
        token: subToken.value.trim(),
        lastEventId: lastId.value,
        onState(s) {
          state.value = s;
          if (s === "connecting") answered = false;
          else if (s !== "reconnecting") answered = true;
          if (s !== "reconnecting") failure.value = "";
        },
        onDisconnect(err, ms) {
          const mine = ++disconnects;
          nextTry.value = ms;
          const again = `; trying again in ${(ms / 1000).toFixed(1)} s`;
          failure.value = err === null ? "" : err.message + again;
          if (err?.name !== "TypeError" || answered) return;
          // An attempt the browser failed before any answer: its word
          // names no cause. Find out which, unless the next attempt has
          // begun meanwhile. (A stream cut after its answer came is a
          // TypeError too, and no refusal.)
          fetchFailure(base, err).then((why) => {
            if (mine === disconnects && state.value === "reconnecting") failure.value = why + again;
          });
        },
        onEvent: (ev) => add({ kind: "event", ...ev }),
        onReset: (reason) => add({ kind: "reset", data: reason }),
        onExpired: (time) => add({ kind: "expired", data: time }),
        onError: (e) => (refusal.value = `HTTP ${e.status}: ${e.error}`),
        onResume(id) {
          resumes.value++;
          add({ kind: "resume", id });
        },
        onLastEventId(id) {
          lastId.value = id;
          store(lastIdKey, id);
        },
        onRetry: (ms) => (retryMs.value = ms),
      });
      conn.connect();
    }

    const disconnect = () => conn?.close();
    const drop = () => conn?.drop();
    const resume = () => conn?.resume();

    async function send() {
      if (problem !== "") {
        pubOK.value = false;
        pubResult.value = `error: ${problem}`;
        pubCount.value++;
        return;
      }
      const mine = ++sends;
      const show = (ok, text) => {
        if (mine !== sends) return;
        pubOK.value = ok;
        pubResult.value = text;
      };
      show(true, "publishing…");
      try {
        const r = await publish(base, {
          topic: pubTopic.value.trim(),
          token: token.value.trim(),
          event: pubEvent.value.trim(),
          data: pubData.value,
          signal: AbortSignal.timeout(PUBLISH_TIMEOUT_MS),
        });
        show(r.ok, r.ok ? `published id ${r.id}` : `HTTP ${r.status}: ${r.error}`);
      } catch (err) {
        if (err.name === "TimeoutError") show(false, `error: no answer from the hub after ${PUBLISH_TIMEOUT_MS / 1000} s`);
        else if (err.noAnswer) show(false, `error: ${await fetchFailure(base, err)}`);
        else show(false, `error: ${err.message}`);
      }
      pubCount.value++;
    }

    onBeforeUnmount(() => conn?.close());
    return {
      hub, topics, subToken, state, lastId, retryMs, resumes, log, refusal, failure, nextTry,
      token, pubTopic, pubEvent, pubData, pubResult, pubOK, pubCount,
      connect, disconnect, drop, resume, send,
    };
  },
  template: `
    <section class="panel panel-wide" aria-labelledby="hub-title">
      <header class="panel-head">
        <h2 id="hub-title">Hub</h2>
        <span id="hub-state" class="state" :data-state="state.split(':')[0]">{{ state }}</span>
      </header>
      <p class="hint">
        <code>GET api/v1/events?topic=…</code> read with <code>sse-client.js</code>.
        Patterns may use <code>*</code> (one segment) and <code>&gt;</code> (the rest).
        Drop the connection, publish, and watch it resume with <code>Last-Event-ID</code>.
      </p>
      <div class="controls">
        <label class="field inline grow">
          <span>Topics</span>
          <input id="hub-topics" v-model="topics" type="text" spellcheck="false" placeholder="demo.> news.*" @keyup.enter="connect">
        </label>
        <label class="field inline">
          <span>Subscribe token or JWT</span>
          <input id="hub-sub-token" v-model="subToken" type="password" size="10" autocomplete="off" placeholder="if required">
        </label>
      </div>
      <div class="controls">
        <button id="hub-connect" type="button" @click="connect">Connect</button>
        <button id="hub-disconnect" type="button" class="secondary" :disabled="!['connecting', 'open', 'reconnecting', 'unreachable'].includes(state)" @click="disconnect">Disconnect</button>
        <button id="hub-drop" type="button" class="secondary" :disabled="state !== 'open'" @click="drop">Drop connection</button>
        <button id="hub-resume" type="button" class="secondary" :disabled="!['reconnecting', 'unreachable'].includes(state)" @click="resume">Resume now</button>
      </div>
      <p v-if="state === 'unreachable'" id="hub-unreachable" class="hint warn" role="status">the proxy cannot reach ssehub: trying again in {{ (nextTry / 1000).toFixed(1) }} s</p>
      <p v-if="state === 'reconnecting' && failure" id="hub-failure" class="hint warn" role="status">the last attempt failed: {{ failure }}</p>
      <p v-if="refusal" id="hub-refusal" class="pub-result bad" role="alert">{{ refusal }}</p>
      <p class="meta hub-meta">
        hub: <code id="hub-url">{{ hub }}</code>
        · last id: <code id="hub-last-id">{{ lastId || "none" }}</code>
        · resumes: <span id="hub-resumes">{{ resumes }}</span>
        <template v-if="retryMs > 0"> · retry: {{ retryMs }} ms</template>
      </p>
      <ol id="hub-log" class="log" v-autoscroll aria-live="polite">
        <li v-for="e in log" :key="e.key" :class="e.kind" :data-id="e.kind === 'event' ? e.id : null">
          <template v-if="e.kind === 'event'"><span class="ev-id">{{ e.id }}</span> <span v-if="e.type !== 'message'" class="ev-type">{{ e.type }}</span>{{ e.type !== "message" ? " " : "" }}{{ e.data }}</template>
          <template v-else-if="e.kind === 'reset'">reset: {{ e.data }}</template>
          <template v-else-if="e.kind === 'expired'">token expired at {{ e.data }}: enter a fresh one and Connect to resume</template>
          <template v-else>resumed after id {{ e.id }}</template>
        </li>
      </ol>
      <h3 class="sub-head">Publish</h3>
      <div class="controls">
        <label class="field inline grow">
          <span>Topic</span>
          <input id="hub-pub-topic" v-model="pubTopic" type="text" spellcheck="false">
        </label>
        <label class="field inline">
          <span>Event</span>
          <input id="hub-pub-event" v-model="pubEvent" type="text" size="8" spellcheck="false" placeholder="optional">
        </label>
        <label class="field inline">
          <span>Token or JWT</span>
          <input id="hub-token" v-model="token" type="password" size="10" autocomplete="off">
        </label>
      </div>
      <label class="field">
        <span>Data (JSON, or text sent as a JSON string)</span>
        <textarea id="hub-pub-data" v-model="pubData" rows="2" spellcheck="false"></textarea>
      </label>
      <div class="controls">
        <button id="hub-publish" type="button" @click="send">Publish</button>
        <span id="hub-pub-result" class="pub-result" :class="{ bad: !pubOK }" :data-count="pubCount" role="status">{{ pubResult }}</span>
      </div>
    </section>`,
};
