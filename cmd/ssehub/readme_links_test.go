package main

import (
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"unicode"
)

// markdownLink matches an inline Markdown link's target.
var markdownLink = regexp.MustCompile(`\]\(([^)\s]+)\)`)

// repoPath matches a code span naming a path of the repository, such as
// `cmd/ssehub/nginx_test.go` or `deploy/nginx.conf`.
var repoPath = regexp.MustCompile("`((?:bench|cmd|config|deploy|docs|internal|static)/[^`\\s]*)`")

// TestReadmeLinks keeps the README's and the benchmarks' links to files of
// the repository and to their headings working: every file named exists,
// and every #anchor is one GitHub makes of a heading of its file. A path
// of the repository named in a code span, a test file the text points to
// for one, exists too.
func TestReadmeLinks(t *testing.T) {
	for _, doc := range []string{"README.md", "docs/BENCHMARKS.md"} {
		text := markdownProse(t, doc)
		for _, m := range repoPath.FindAllStringSubmatch(text, -1) {
			path, _, _ := strings.Cut(m[1], ":") // a line, as in file.go:42
			if strings.ContainsAny(path, "{*<") {
				continue // a pattern, not a path
			}
			if _, err := os.Stat(filepath.Join("../..", path)); err != nil {
				t.Errorf("%s names %s: %v", doc, m[1], err)
			}
		}
		for _, m := range markdownLink.FindAllStringSubmatch(text, -1) {
			target := m[1]
			if strings.Contains(target, "://") || strings.HasPrefix(target, "mailto:") {
				continue
			}
			file, anchor, _ := strings.Cut(target, "#")
			if file == "" {
				file = doc
			} else {
				file = filepath.ToSlash(filepath.Join(filepath.Dir(doc), file))
			}
			if _, err := os.Stat(filepath.Join("../..", file)); err != nil {
				t.Errorf("%s: link %s: %v", doc, target, err)
				continue
			}
			if anchor == "" || !strings.HasSuffix(file, ".md") {
				continue
			}
			if !headingAnchors(t, file)[anchor] {
				t.Errorf("%s: link %s: %s has no heading whose anchor is #%s", doc, target, file, anchor)
			}
		}
	}
}

// markdownProse returns the Markdown file at path, relative to the
// repository's root, without its fenced code blocks.
func markdownProse(t *testing.T, path string) string {
	t.Helper()
	data, err := os.ReadFile(filepath.Join("../..", path))
	if err != nil {
		t.Fatal(err)
	}
	var b strings.Builder
	fenced := false
	for line := range strings.SplitSeq(string(data), "\n") {
		if strings.HasPrefix(strings.TrimSpace(line), "```") {
			fenced = !fenced
			continue
		}
		if !fenced {
			b.WriteString(line)
			b.WriteByte('\n')
		}
	}
	return b.String()
}

// headingAnchors returns the anchors GitHub gives the headings of the
// Markdown file at path: the heading's text in lower case, without
// punctuation, spaces made hyphens, and -1, -2, ... after a repeated one.
func headingAnchors(t *testing.T, path string) map[string]bool {
	t.Helper()
	anchors := map[string]bool{}
	seen := map[string]int{}
	for line := range strings.SplitSeq(markdownProse(t, path), "\n") {
		text := strings.TrimLeft(line, "#")
		if text == line || !strings.HasPrefix(text, " ") || len(line)-len(text) > 6 {
			continue
		}
		anchor := strings.Map(func(r rune) rune {
			switch {
			case r == ' ':
				return '-'
			case r == '-' || r == '_' || unicode.IsLetter(r) || unicode.IsDigit(r):
				return unicode.ToLower(r)
			}
			return -1
		}, strings.TrimSpace(text))
		if n := seen[anchor]; n > 0 {
			anchors[anchor+"-"+strconv.Itoa(n)] = true
		} else {
			anchors[anchor] = true
		}
		seen[anchor]++
	}
	return anchors
}

// TestReadmeDevelopmentTableNamesEveryFolder keeps the README's
// Development table, a newcomer's map of the repository, whole: every
// folder of cmd/ and internal/ and every top-level folder of the code has
// a row, and the row of deploy/ names each of its files, as a reader who
// meets one in a compose file looks for it there.
func TestReadmeDevelopmentTableNamesEveryFolder(t *testing.T) {
	data, err := os.ReadFile("../../README.md")
	if err != nil {
		t.Fatal(err)
	}
	_, table, ok := strings.Cut(string(data), "\n## Development\n")
	if !ok {
		t.Fatal("README has no Development section")
	}
	_, table, _ = strings.Cut(table, "\n| path | what |\n")
	table, _, _ = strings.Cut(table, "\n\n")
	rows := map[string]string{}
	for row := range strings.SplitSeq(table, "\n") {
		path, what, ok := strings.Cut(strings.TrimPrefix(row, "| `"), "` | ")
		if ok {
			rows[path] = what
		}
	}
	if len(rows) == 0 {
		t.Fatal("README's Development table has no rows: update this test with the README")
	}
	var want []string
	for _, parent := range []string{"cmd", "internal"} {
		entries, err := os.ReadDir(filepath.Join("../..", parent))
		if err != nil {
			t.Fatal(err)
		}
		for _, e := range entries {
			if e.IsDir() {
				want = append(want, parent+"/"+e.Name()+"/")
			}
		}
	}
	want = append(want, "config/", "deploy/", "bench/", "static/", "scripts/")
	for _, path := range want {
		if _, ok := rows[path]; !ok {
			t.Errorf("README's Development table has no row for %s", path)
		}
	}
	entries, err := os.ReadDir("../../deploy")
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range entries {
		name := e.Name()
		if e.IsDir() {
			name += "/"
		}
		if !strings.Contains(rows["deploy/"], "`"+name+"`") {
			t.Errorf("README's Development table: the row of deploy/ does not name `%s`", name)
		}
	}
}

// TestReadmeNamesPanel3Default keeps the README's word on the demo page's
// ?service= parameter in step with the panel: without it, panel 3 asks a
// fixed address, not the page's own origin, so a server on another
// address needs it, and the README says which address that is.
func TestReadmeNamesPanel3Default(t *testing.T) {
	js, err := os.ReadFile("../../static/panel-cross-origin.js")
	if err != nil {
		t.Fatal(err)
	}
	m := regexp.MustCompile(`get\("service"\) \|\| "([^"]+)"`).FindSubmatch(js)
	if m == nil {
		t.Fatal(`static/panel-cross-origin.js has no ?service= default (get("service") || "..."): update this test with the panel`)
	}
	readme, err := os.ReadFile("../../README.md")
	if err != nil {
		t.Fatal(err)
	}
	text := strings.Join(strings.Fields(string(readme)), " ")
	want := "`?service=` sets panel 3's service URL (without it, `" + string(m[1]) + "`"
	if !strings.Contains(text, want) {
		t.Errorf("README should say %q...: the panel's default service URL", want)
	}
}
