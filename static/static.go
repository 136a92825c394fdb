// Package static holds ssehub's demo page: the HTML, its scripts and styles,
// and the vendored Vue build with its licence. Every reference in the page is
// relative, so the same folder also works served as-is from another origin.
package static

import "embed"

// FS holds the demo page's files at its root: index.html, *.js, *.css and
// vendor/. Tests (*.test.mjs) and package.json stay out. It is read-only and
// safe for concurrent use.
//
//go:embed index.html *.js *.css vendor/vue.global.prod.js vendor/LICENSE-vue vendor/VERSION-vue
var FS embed.FS
