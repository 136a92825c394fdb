#!/usr/bin/env bash
# vendor-vue.sh refreshes the Vue 3 build that the demo page loads, so the page
# needs no CDN and works offline. It fetches the npm package `vue` (VUE_SPEC,
# default vue@3, i.e. the latest 3.x) with `npm pack` into a temporary directory
# and copies its browser build and licence into static/vendor/.
#
# Usage: scripts/vendor-vue.sh            (run from anywhere inside the repo)
#        VUE_SPEC=vue@3.5.13 scripts/vendor-vue.sh
set -euo pipefail

spec="${VUE_SPEC:-vue@3}"
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
dest="$root/static/vendor"

command -v npm >/dev/null || { echo "vendor-vue: npm is required" >&2; exit 1; }

tmp="$(mktemp -d)"
trap 'rm -rf "$tmp"' EXIT

(cd "$tmp" && npm pack --silent "$spec" >/dev/null)
tarball="$(ls "$tmp"/vue-*.tgz)"
tar -xzf "$tarball" -C "$tmp" package/package.json package/LICENSE package/dist/vue.global.prod.js

version="$(node -p 'require(process.argv[1]).version' "$tmp/package/package.json")"
case "$version" in
3.*) ;;
*) echo "vendor-vue: expected Vue 3, got $version" >&2; exit 1 ;;
esac

mkdir -p "$dest"
cp "$tmp/package/dist/vue.global.prod.js" "$dest/vue.global.prod.js"
cp "$tmp/package/LICENSE" "$dest/LICENSE-vue"
printf '%s\n' "$version" >"$dest/VERSION-vue"
echo "vendor-vue: static/vendor/vue.global.prod.js is vue $version"
