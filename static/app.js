// app.js: mounts the demo page. Each panel is one component in its own file;
// index.html places them. Vue is the global build in vendor/, loaded first.
import EventSourcePanel from "./panel-eventsource.js";
import FetchPanel from "./panel-fetch.js";
import CrossOriginPanel from "./panel-cross-origin.js";
import HubPanel from "./panel-hub.js";

const { createApp } = Vue;

// autoscroll keeps a log scrolled to its newest line.
const autoscroll = {
  updated(el) {
    el.scrollTop = el.scrollHeight;
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
