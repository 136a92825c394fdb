package static

import (
	"io/fs"
	"path"
	"regexp"
	"strings"
	"testing"
)

// TestFSHoldsThePage checks that the page's files are embedded and that
// tests and tooling files are not.
func TestFSHoldsThePage(t *testing.T) {
	for _, name := range []string{
		"index.html", "app.js", "sse-client.js", "style.css",
		"vendor/vue.global.prod.js", "vendor/LICENSE-vue", "vendor/VERSION-vue",
	} {
		if _, err := fs.Stat(FS, name); err != nil {
			t.Errorf("%s: %v", name, err)
		}
	}
	err := fs.WalkDir(FS, ".", func(name string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if strings.Contains(name, ".test.") || strings.HasSuffix(name, ".go") || path.Base(name) == "package.json" {
			t.Errorf("%s is embedded; the page does not need it", name)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}

var (
	// htmlRef matches src= and href= attributes.
	htmlRef = regexp.MustCompile(`(?:src|href)="([^"]*)"`)
	// jsImport matches static import specifiers.
	jsImport = regexp.MustCompile(`(?m)^\s*import\s+(?:[^"']*\s+from\s+)?["']([^"']+)["']`)
)

// TestReferencesAreRelativeAndEmbedded checks every reference in the page
// and every module import: each must be a relative path to an embedded file,
// so the page works offline, from ssehub and from any other origin.
func TestReferencesAreRelativeAndEmbedded(t *testing.T) {
	refs := map[string][]string{}
	html := readFile(t, "index.html")
	for _, m := range htmlRef.FindAllStringSubmatch(html, -1) {
		refs["index.html"] = append(refs["index.html"], m[1])
	}
	scripts, err := fs.Glob(FS, "*.js")
	if err != nil {
		t.Fatal(err)
	}
	for _, name := range scripts {
		for _, m := range jsImport.FindAllStringSubmatch(readFile(t, name), -1) {
			refs[name] = append(refs[name], m[1])
		}
	}
	if len(refs["index.html"]) < 3 || len(refs["app.js"]) < 1 {
		t.Fatalf("found too few references to check: %v", refs)
	}
	for from, list := range refs {
		for _, ref := range list {
			if strings.HasPrefix(ref, "data:") {
				continue
			}
			if strings.Contains(ref, "//") || strings.HasPrefix(ref, "/") {
				t.Errorf("%s: %q is not relative", from, ref)
				continue
			}
			name := path.Clean(strings.TrimPrefix(ref, "./"))
			if _, err := fs.Stat(FS, name); err != nil {
				t.Errorf("%s: %q is not embedded: %v", from, ref, err)
			}
		}
	}
}

// TestVendoredVueVersion checks that VERSION-vue names the embedded build.
func TestVendoredVueVersion(t *testing.T) {
	version := strings.TrimSpace(readFile(t, "vendor/VERSION-vue"))
	if !strings.HasPrefix(version, "3.") {
		t.Fatalf("VERSION-vue is %q, want a Vue 3 version", version)
	}
	head := readFile(t, "vendor/vue.global.prod.js")[:200]
	if !strings.Contains(head, "vue v"+version+"\n") {
		t.Errorf("vue.global.prod.js starts %q, want version %s", head, version)
	}
}

func readFile(t *testing.T, name string) string {
	t.Helper()
	b, err := fs.ReadFile(FS, name)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}
