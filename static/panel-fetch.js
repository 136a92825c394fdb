// panel-fetch.js: the "fetch + stream" panel. It POSTs text to stream and
// reads the token events through the incremental parser in sse-client.js, the
// way chat completions stream: one {"index", "token"} event per word, then
// [DONE]. Stop aborts the request.
import { fetchEventSource } from "./sse-client.js";

const { ref, computed, onBeforeUnmount } = Vue;

const DEFAULT_TEXT =
  "Server-Sent Events carry a stream of text from the server to the browser, one event at a time. " +
  "This panel reads them with fetch and an incremental parser, the way chat completions arrive.";

export default {
  name: "FetchPanel",
  setup() {
    const text = ref(DEFAULT_TEXT);
    const interval = ref("80ms");
    const state = ref("idle"); // idle | streaming | done | aborted | error: <message>
    const tokens = ref([]);
    const output = computed(() => tokens.value.join(" "));
    let current = null; // the AbortController of the running request

    // start sends one request; a newer start or Stop makes this one stale.
    async function start() {
      if (current !== null) current.abort();
      const run = new AbortController();
      current = run;
      tokens.value = [];
      state.value = "streaming";
      const live = () => current === run && state.value === "streaming";
      const body = { text: text.value };
      if (interval.value.trim() !== "") body.interval = interval.value.trim();
      try {
        await fetchEventSource("stream", {
          method: "POST",
          headers: { "Content-Type": "application/json" },
          body: JSON.stringify(body),
          signal: run.signal,
          onEvent(ev) {
            if (!live()) return;
            if (ev.data === "[DONE]") {
              state.value = "done";
              run.abort(); // nothing more to read
              return;
            }
            tokens.value.push(String(JSON.parse(ev.data).token));
          },
        });
        if (live()) state.value = "error: the stream ended before [DONE]";
      } catch (err) {
        if (live()) state.value = `error: ${err.message}`;
      }
    }

    function stop() {
      if (state.value !== "streaming") return;
      state.value = "aborted";
      current.abort();
    }

    onBeforeUnmount(() => current?.abort());
    return { text, interval, state, output, tokens, start, stop };
  },
  template: `
    <section class="panel" aria-labelledby="fetch-title">
      <header class="panel-head">
        <h2 id="fetch-title">fetch + stream</h2>
        <span id="fetch-state" class="state" :data-state="state.split(':')[0]">{{ state }}</span>
      </header>
      <p class="hint">
        <code>POST stream</code> with a JSON body, read by <code>sse-client.js</code>:
        one event per word, then <code>[DONE]</code>.
      </p>
      <label class="field">
        <span>Text</span>
        <textarea id="fetch-text" v-model="text" rows="4" spellcheck="false"></textarea>
      </label>
      <div class="controls">
        <label class="field inline">
          <span>Interval</span>
          <input id="fetch-interval" v-model="interval" type="text" size="7" placeholder="50ms" title="empty: the server's default, 50ms">
        </label>
        <button id="fetch-start" type="button" @click="start">Start</button>
        <button id="fetch-stop" type="button" class="secondary" :disabled="state !== 'streaming'" @click="stop">Stop</button>
        <span class="meta">tokens: {{ tokens.length }}</span>
      </div>
      <p id="fetch-output" class="output" v-autoscroll aria-live="polite">{{ output }}</p>
    </section>`,
};
