// panel-eventsource.js: the "EventSource" panel. The browser's own client
// reads GET stream (same origin) and, unlike the seed page, closes itself on
// the server's named close event, so it does not reconnect forever. A
// connection is shown "open" once its stream says something: ssehub's
// ticker sends a line at once, while the stand-in that the README's nginx
// recipe answers with while ssehub is out of reach (a comment, which
// EventSource does not show, and retry:) opens and ends empty. The panel
// shows that as "unreachable", and EventSource tries again after its retry.
import { errorText } from "./sse-client.js";

const { ref, onBeforeUnmount } = Vue;

// REFUSAL_TIMEOUT_MS bounds refusal's request, its body included: an
// answer that does not come, or an error body that never ends, leaves the
// panel with what it has by then.
const REFUSAL_TIMEOUT_MS = 3000;

// UNREACHABLE_NOTE is the note for a connection that opened and ended
// without an event.
const UNREACHABLE_NOTE =
  "ssehub is unreachable: the answer was an empty stream, as a proxy sends while ssehub is out of reach (the README's nginx recipe); EventSource tries again";

// refusal asks GET stream again, with the Last-Event-ID that the
// EventSource's reconnect sent, for what EventSource does not tell the
// page: why an answer stopped it. It resolves to { status, reason, stream }:
// the answer's status and the "error" of a JSON error body (ssehub's, as
// "too many streams: try again later" in a 503), "" when there is none;
// status 0 for an event stream or no answer within REFUSAL_TIMEOUT_MS,
// 204 when the stream is over (a resume after its last line). stream is
// true for an event stream: the server serves now what it refused a moment
// ago (a slot freed in between). A stream it gets is closed at once.
async function refusal(lastEventId) {
  const run = new AbortController();
  const timer = setTimeout(() => run.abort(), REFUSAL_TIMEOUT_MS);
  try {
    const headers = lastEventId === "" ? {} : { "Last-Event-ID": lastEventId };
    const response = await fetch("stream", { headers, cache: "no-store", signal: run.signal });
    const type = response.headers.get("Content-Type") ?? "";
    const isStream = type.split(";")[0].trim().toLowerCase() === "text/event-stream";
    if (response.ok && isStream) return { status: 0, reason: "", stream: true };
    if (response.status === 204) return { status: 204, reason: "", stream: false };
    if (response.ok) return { status: response.status, reason: "", stream: false }; // a body that may never end
    return { status: response.status, reason: await errorText(response.body), stream: false };
  } catch {
    return { status: 0, reason: "", stream: false };
  } finally {
    clearTimeout(timer);
    run.abort();
  }
}

export default {
  name: "EventSourcePanel",
  setup() {
    const state = ref("closed"); // connecting | open | unreachable | closed
    const reconnects = ref(0);
    const lines = ref([]); // { key, text, id, end }
    const note = ref(""); // why the browser gave up, or the ticker started over
    let source = null;
    let sawError = false;
    let opened = false;
    let said = true; // the current connection's stream has sent an event
    let lastId = ""; // the last event id seen: what a reconnect sends
    let starts = 0; // Start clicks: a later one makes an earlier note stale

    function stop() {
      if (source !== null) source.close();
      source = null;
      state.value = "closed";
    }

    // heard marks the current connection's stream as one that says
    // something: open, not a stand-in.
    function heard() {
      said = true;
      if (state.value === "closed") return;
      state.value = "open";
      if (note.value === UNREACHABLE_NOTE) note.value = "";
    }

    function add(ev, end = false) {
      heard();
      lastId = ev.lastEventId;
      lines.value.push({ key: lines.value.length, text: ev.data, id: ev.lastEventId, end });
    }

    // start opens exactly one EventSource and drops the previous one. Its
    // handlers check that it is still the current one.
    function start() {
      stop();
      lines.value = [];
      reconnects.value = 0;
      note.value = "";
      sawError = false;
      opened = false;
      said = true;
      lastId = "";
      const run = ++starts;
      const es = new EventSource("stream");
      source = es;
      state.value = "connecting";
      es.onopen = () => {
        if (es !== source) return;
        // An error followed by a reopen is one reconnect.
        if (sawError) reconnects.value++;
        sawError = false;
        opened = true;
        said = false; // "open" once it says something: heard
      };
      es.onerror = () => {
        if (es !== source) return;
        sawError = true;
        if (es.readyState !== EventSource.CLOSED) {
          if (!said || state.value === "unreachable") {
            // Opened and ended empty, or a stand-in's next attempt.
            state.value = "unreachable";
            note.value = UNREACHABLE_NOTE;
          } else state.value = "connecting";
          return;
        }
        // The browser gave up: an answer that is not a 200 event stream
        // (ssehub sends 204 to a reconnect after the last event, 503 at
        // capacity or while shutting down). EventSource does not say
        // which: ask again, unless a newer Start came meanwhile.
        stop();
        refusal(opened ? lastId : "").then(({ status, reason, stream }) => {
          if (run !== starts) return;
          if (reason !== "") note.value = `HTTP ${status}: ${reason}; EventSource stopped for good`;
          else if (status === 204) note.value = "HTTP 204: the stream is over, its last line came before the connection dropped; EventSource stopped for good";
          else if (stream) note.value = "the server refused the stream, then served it to a second request: EventSource stopped for good; Start tries again";
          else if (opened) note.value = `${status ? `HTTP ${status}: ` : ""}the server refused to resume the stream; EventSource stopped for good`;
          else note.value = `${status ? `HTTP ${status}: ` : ""}the stream could not be opened: is this page served by ssehub?`;
        });
      };
      es.onmessage = (ev) => {
        if (es === source) add(ev);
      };
      // A resume the ticker cannot serve starts again from its first line,
      // after an event saying so: shown, not passed over in silence.
      es.addEventListener("reset", (ev) => {
        if (es !== source) return;
        heard();
        lastId = ev.lastEventId;
        note.value = `reset: ${ev.data}`;
      });
      es.addEventListener("close", (ev) => {
        if (es !== source) return;
        add(ev, true);
        stop();
      });
    }

    onBeforeUnmount(stop);
    return { state, reconnects, lines, note, start, stop };
  },
  template: `
    <section class="panel" aria-labelledby="es-title">
      <header class="panel-head">
        <h2 id="es-title">EventSource</h2>
        <span id="es-state" class="state" :data-state="state">{{ state }}</span>
      </header>
      <p class="hint">
        <code>new EventSource("stream")</code> on this origin. It closes on the
        server's <code>close</code> event; a drop reconnects with
        <code>Last-Event-ID</code>.
      </p>
      <div class="controls">
        <button id="es-start" type="button" @click="start">Start</button>
        <button id="es-stop" type="button" class="secondary" :disabled="state === 'closed'" @click="stop">Stop</button>
        <span class="meta">reconnects: <span id="es-reconnects">{{ reconnects }}</span></span>
      </div>
      <p id="es-error" class="error" role="status">{{ note }}</p>
      <ol id="es-log" class="log" v-autoscroll aria-live="polite">
        <li v-for="line in lines" :key="line.key" :class="{ end: line.end }"
            :title="line.id ? 'id ' + line.id : ''">{{ line.text }}</li>
      </ol>
    </section>`,
};
