// panel-eventsource.js: the "EventSource" panel. The browser's own client
// reads GET stream (same origin) and, unlike the seed page, closes itself on
// the server's named close event, so it does not reconnect forever.
const { ref, onBeforeUnmount } = Vue;

export default {
  name: "EventSourcePanel",
  setup() {
    const state = ref("closed"); // connecting | open | closed
    const reconnects = ref(0);
    const lines = ref([]); // { key, text, id, end }
    const note = ref(""); // why the browser gave up, or the ticker started over
    let source = null;
    let sawError = false;
    let opened = false;

    function stop() {
      if (source !== null) source.close();
      source = null;
      state.value = "closed";
    }

    function add(ev, end = false) {
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
      const es = new EventSource("stream");
      source = es;
      state.value = "connecting";
      es.onopen = () => {
        if (es !== source) return;
        // An error followed by a reopen is one reconnect.
        if (sawError) reconnects.value++;
        sawError = false;
        opened = true;
        state.value = "open";
      };
      es.onerror = () => {
        if (es !== source) return;
        sawError = true;
        if (es.readyState !== EventSource.CLOSED) {
          state.value = "connecting";
          return;
        }
        // The browser gave up: an answer that is not a 200 event stream
        // (ssehub sends 204 to a reconnect after the last event).
        note.value = opened
          ? "the server refused to resume the stream; EventSource stopped for good"
          : "the stream could not be opened: is this page served by ssehub?";
        stop();
      };
      es.onmessage = (ev) => {
        if (es === source) add(ev);
      };
      // A resume the ticker cannot serve starts again from its first line,
      // after an event saying so: shown, not passed over in silence.
      es.addEventListener("reset", (ev) => {
        if (es === source) note.value = `reset: ${ev.data}`;
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
