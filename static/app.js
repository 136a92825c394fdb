// app.js: mounts the demo page. Each panel is one component in its own file;
// index.html places them. Vue is the global build in vendor/, loaded first.
import EventSourcePanel from "./panel-eventsource.js";
import FetchPanel from "./panel-fetch.js";
import CrossOriginPanel from "./panel-cross-origin.js";
import HubPanel from "./panel-hub.js";

const { createApp } = Vue;

// autoscroll keeps a log, or the fetch panel's output, scrolled to its
// newest line while the reader is at its end; one scrolled up to read
// older lines is left there. It sees every update of its panel, typing in
// the panel's fields included.
const atEnd = new WeakSet(); // the logs scrolled to their end before an update
const autoscroll = {
  beforeUpdate(el) {
    if (el.scrollTop + el.clientHeight >= el.scrollHeight - 2) atEnd.add(el);
    else atEnd.delete(el);
  },
  updated(el) {
    if (atEnd.has(el)) el.scrollTop = el.scrollHeight;
  },
};

const app = createApp({
  mounted() {
    // Browser tests wait for body[data-ready="1"].
    document.body.dataset.ready = "1";
  },
});
app.directive("autoscroll", autoscroll);
app.component("event-source-panel", EventSourcePanel);
app.component("fetch-panel", FetchPanel);
app.component("cross-origin-panel", CrossOriginPanel);
app.component("hub-panel", HubPanel);
app.mount("#app");
