// panel-cross-origin.js: the "Cross-origin" panel. It streams from a service
// URL that may be on another origin, so the browser applies CORS: the state
// shows whether the service allowed this page's origin, and a refusal shows
// the browser's own error. A service that does not answer at all is
// unreachable, not refused; an HTTP error instead of a stream, a stream
// cut or ended before its close event, or a service that takes the
// connection and then says nothing for SILENCE_MS, is an error. A proxy's
// stand-in for a service out of reach (the README's nginx recipe: a stream
// of the comment UNREACHABLE_COMMENT) is unreachable too, behind it.
import { fetchEventSource, SSEResponseError } from "./sse-client.js";
import { UNREACHABLE_COMMENT } from "./hub-client.js";

const { ref, onBeforeUnmount } = Vue;

// SILENCE_MS is the longest the panel waits for the service's answer, and
// then for each line of its stream (one every 200 ms), before it calls the
// service silent: a connection the service accepts but never answers on
// would otherwise read "connecting" until the browser gives up, minutes
// later.
const SILENCE_MS = 5000;

// defaultServiceURL is the page's ?service= query parameter, else the
// service's default address.
function defaultServiceURL() {
  return new URLSearchParams(location.search).get("service") || "http://localhost:8111";
}

// isHTTPURL reports whether text is an absolute http or https URL.
function isHTTPURL(text) {
  try {
    const { protocol } = new URL(text);
    return protocol === "http:" || protocol === "https:";
  } catch {
    return false;
  }
}

// isLoopback reports whether hostname is this machine's, which browsers
// trust over plain http: an https page may stream from it. Chromium
// trusts a localhost name with the DNS root's trailing dot too, and an
// IPv4-mapped loopback address (URL writes [::ffff:127.0.0.1] in hex).
// The Hub panel uses it too.
export function isLoopback(hostname) {
  const name = hostname.replace(/\.$/, "");
  return name === "localhost" || name.endsWith(".localhost") || name === "[::1]" || /^127(\.\d+){3}$/.test(name) || /^\[::ffff:7f[0-9a-f]{2}:[0-9a-f]{1,4}\]$/.test(name);
}

export default {
  name: "CrossOriginPanel",
  setup() {
    const url = ref(defaultServiceURL());
    const state = ref("idle"); // idle | connecting | allowed | done | refused | unreachable | error
    const lines = ref([]); // { key, text, end }
    const error = ref("");
    const target = ref(""); // the service URL of the last start
    const sameOrigin = ref(false); // the last start's service is this page's origin
    const standIn = ref(false); // the last start was answered by a proxy's stand-in
    const origin = location.origin;
    let current = null;

    async function start() {
      if (current !== null) current.abort();
      const run = new AbortController();
      current = run;
      lines.value = [];
      error.value = "";
      state.value = "connecting";
      const mine = () => current === run;
      const add = (text, end = false) => lines.value.push({ key: lines.value.length, text, end });
      const base = url.value.trim().replace(/\/+$/, "");
      target.value = base;
      sameOrigin.value = false;
      standIn.value = false;
      // fetch fails on a URL of another scheme as on a CORS refusal: say
      // what is wrong before that.
      if (!isHTTPURL(base)) {
        state.value = "error";
        error.value = `${JSON.stringify(url.value.trim())} is not an http:// or https:// URL, such as http://localhost:8111`;
        return;
      }
      // An https page may not fetch from http:// elsewhere (mixed content):
      // the browser blocks the request, and the probe below, before they
      // leave, and the panel would call a running service unreachable.
      const service = new URL(base);
      if (location.protocol === "https:" && service.protocol === "http:" && !isLoopback(service.hostname)) {
        state.value = "error";
        error.value = `this page is https: the browser blocks requests to ${service.origin} (mixed content); the service needs an https:// URL (server.tls, or a TLS proxy in front)`;
        return;
      }
      // On the page's own origin the browser checks nothing: "allowed"
      // says nothing about cors.allowed_origins there.
      sameOrigin.value = service.origin === origin;
      try {
        await fetchEventSource(`${base}/stream?count=5&interval=200ms`, {
          headers: { Accept: "text/event-stream" },
          signal: run.signal,
          idleTimeout: SILENCE_MS,
          onOpen() {
            if (mine()) state.value = "allowed";
          },
          onComment(text) {
            if (!mine() || state.value !== "allowed" || text !== UNREACHABLE_COMMENT) return;
            standIn.value = true;
            state.value = "unreachable";
            run.abort(); // the stand-in says nothing more
          },
          onEvent(ev) {
            if (!mine() || state.value !== "allowed") return;
            if (ev.type !== "close") {
              add(ev.data);
              return;
            }
            add(ev.data, true);
            state.value = "done";
            run.abort(); // the stream is over
          },
        });
        // The close event ends a stream that ran to its end; this one
        // ended before it, or was a 204 (no stream at all).
        if (!mine() || standIn.value) return;
        error.value =
          state.value === "allowed" ? "the stream ended before its close event" : "the service answered 204 No Content: no stream";
        state.value = "error";
      } catch (err) {
        if (!mine() || state.value === "done" || standIn.value) return;
        // A fetch that rejects before any answer is what a CORS refusal
        // looks like from inside the page (the reason is only in the console),
        // and what a service that does not answer looks like too: a no-cors
        // request, which CORS does not check, tells them apart.
        // An HTTP error got past CORS (the page could read its status),
        // and so did a stream cut before its end, but neither ran to its
        // end: an error, with the lines that came.
        error.value = String(err);
        // A page cannot tell a connect nothing answers (no SYN
        // answered) from a connection taken and left silent.
        if (err.name === "TimeoutError") {
          error.value =
            state.value === "connecting"
              ? `no answer from ${base} after ${SILENCE_MS / 1000} s: nothing answers at that address (a host down or cut off), or a service took the connection and said nothing`
              : `the stream went silent for ${SILENCE_MS / 1000} s`;
          state.value = "error";
          return;
        }
        if (err instanceof SSEResponseError || state.value !== "connecting") {
          state.value = "error";
          return;
        }
        const answers = await fetch(`${base}/`, { mode: "no-cors", cache: "no-store", signal: run.signal }).then(
          () => true,
          () => false,
        );
        if (mine()) state.value = answers ? "refused" : "unreachable";
      }
    }

    onBeforeUnmount(() => current?.abort());
    return { url, state, lines, error, origin, target, sameOrigin, standIn, start };
  },
  template: `
    <section class="panel" aria-labelledby="xo-title">
      <header class="panel-head">
        <h2 id="xo-title">Cross-origin</h2>
        <span id="xo-state" class="state" :data-state="state">{{ state }}</span>
      </header>
      <p class="hint">
        This page's origin: <code id="xo-origin">{{ origin }}</code>. A service on
        another origin answers only if its <code>cors.allowed_origins</code> lists it.
      </p>
      <div class="controls">
        <label class="field inline grow">
          <span>Service URL</span>
          <input id="xo-url" v-model="url" type="url" spellcheck="false" @keyup.enter="start">
        </label>
        <button id="xo-start" type="button" @click="start">Start</button>
      </div>
      <p id="xo-error" class="error" role="status">{{ error }}</p>
      <p v-if="state === 'refused'" id="xo-hint" class="hint warn">the service must list this page's origin ({{ origin }}) in cors.allowed_origins, or in SSEHUB_CORS_ALLOWED_ORIGINS, which replaces the config file's list when set (as docker-compose.yml sets it)</p>
      <p v-else-if="state === 'unreachable' && standIn" id="xo-hint" class="hint warn">{{ target }} answered for the service with a proxy's stand-in: the proxy cannot reach ssehub behind it (restarting, or down)</p>
      <p v-else-if="state === 'unreachable'" id="xo-hint" class="hint warn">nothing answers at {{ target }}: is the service running there?</p>
      <p v-else-if="sameOrigin && state !== 'error'" id="xo-hint" class="hint">{{ target }} is this page's own origin: the browser checks no CORS for it. Open this page on another origin (another host name or port, e.g. 127.0.0.1 for localhost) to see cors.allowed_origins at work.</p>
      <ol id="xo-log" class="log" v-autoscroll aria-live="polite">
        <li v-for="line in lines" :key="line.key" :class="{ end: line.end }">{{ line.text }}</li>
      </ol>
    </section>`,
};
