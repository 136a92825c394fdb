package main

import (
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"maps"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/ssehub/ssehub/config"
	"github.com/ssehub/ssehub/internal/stream"
)

// Bounds on the container of TestDockerImage.
const (
	containerUpTimeout = 15 * time.Second // answering /healthz from the host
	// Docker's first health probe runs one HEALTHCHECK interval (10s)
	// after the start.
	containerHealthyTimeout = 45 * time.Second
)

// TestDockerImage builds the Dockerfile's final stage around the binary
// built as its build stage builds it, runs it as docker-compose.yml runs the
// ssehub service (its config mount, read-only, and its environment), on the
// host's network at a free loopback port, and checks from the host: Docker
// finds it healthy through the image's own HEALTHCHECK, its process runs as
// uid 65532, /stream streams, the mounted config and the environment both
// take effect, and `docker stop` ends it with exit 0 within
// server.shutdown_timeout.
func TestDockerImage(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and runs the Docker image")
	}
	if testTransport != "gin" {
		t.Skip("the image serves with its config's transport: tested once, in the gin pass")
	}
	docker := useDocker(t)

	svc, ok := loadCompose(t).Services["ssehub"]
	if !ok || len(svc.Volumes) != 1 {
		t.Fatal("docker-compose.yml: want an ssehub service with one volume (TestComposeFile)")
	}
	vol := svc.Volumes[0]
	mounted, tickerCount := changedConfigCopy(t, vol.Source)
	env := map[string]string{}
	for k, v := range svc.Environment {
		if v != nil {
			env[k] = *v
		}
	}
	// runListening sets the address the container listens on.
	env["SSEHUB_SERVER_ADDR"] = "127.0.0.1:0"
	cfg, err := config.Load([]string{"--config", filepath.Join(mounted, "ssehub.yaml")}, func(k string) string { return env[k] })
	if err != nil {
		t.Fatalf("the mounted config with the compose environment: %v", err)
	}
	if cfg.Demo.TickerCount != tickerCount {
		t.Fatalf("demo.ticker_count %d in the mounted config, want %d", cfg.Demo.TickerCount, tickerCount)
	}

	image := buildImage(t, docker, imageContext(t))
	mount := "type=bind,source=" + mounted + ",target=" + vol.Target
	if vol.ReadOnly {
		mount += ",readonly"
	}
	ctr, addr := runListening(t, docker, func(addr string) []string {
		env["SSEHUB_SERVER_ADDR"] = addr
		args := []string{"run", "--detach", "--network", "host", "--mount", mount}
		for _, k := range slices.Sorted(maps.Keys(env)) {
			args = append(args, "--env", k+"="+env[k])
		}
		return append(args, image)
	})
	logs := func() string { return docker.logs(ctr) }

	client := &http.Client{Timeout: 30 * time.Second, Transport: &http.Transport{DisableKeepAlives: true}}
	base := "http://" + addr
	waitHealthz(t, client, base, logs)

	if user := docker.must(t, "inspect", "--format", "{{.Config.User}}", ctr); user != "65532:65532" {
		t.Errorf("image user %q, want 65532:65532", user)
	}
	if docker.own {
		pid := docker.must(t, "inspect", "--format", "{{.State.Pid}}", ctr)
		checkProcessIDs(t, pid, "65532")
	}

	// The mounted config's ticker_count, which the image's own config
	// does not have.
	resp, err := client.Get(base + "/stream?interval=10ms")
	if err != nil {
		t.Fatal(err)
	}
	lines := 0
	for p := stream.NewParser(resp.Body); ; {
		ev, err := nextEvent(p)
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			t.Fatalf("/stream: %v", err)
		}
		if strings.HasPrefix(ev.Data, "Streamed line ") {
			lines++
		}
	}
	resp.Body.Close()
	if lines != tickerCount {
		t.Errorf("/stream sent %d lines, want the mounted demo.ticker_count %d", lines, tickerCount)
	}

	// The environment's origins, which the mounted config alone does not allow.
	fileOnly, err := config.Load([]string{"--config", filepath.Join(mounted, "ssehub.yaml")}, func(string) string { return "" })
	if err != nil {
		t.Fatal(err)
	}
	origins := strings.Split(env["SSEHUB_CORS_ALLOWED_ORIGINS"], ",")
	for _, origin := range origins {
		if fileOnly.CORS.AllowOrigin(origin) {
			t.Fatalf("the mounted config alone allows %s: cannot tell the environment's effect", origin)
		}
		req, _ := http.NewRequest(http.MethodGet, base+"/healthz", nil)
		req.Header.Set("Origin", origin)
		resp, err := client.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if got := resp.Header.Get("Access-Control-Allow-Origin"); got != origin {
			t.Errorf("Origin %s: Access-Control-Allow-Origin %q, want it allowed by SSEHUB_CORS_ALLOWED_ORIGINS", origin, got)
		}
	}

	waitHealthy(t, docker, ctr, logs)

	// docker stop with a stream open: the stream ends, the process exits 0
	// within the shutdown timeout, before docker would kill it.
	resp, err = client.Get(base + "/stream?count=5&interval=1m")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	p := stream.NewParser(resp.Body)
	if ev, err := nextEvent(p); err != nil || !strings.HasPrefix(ev.Data, "Streamed line ") {
		t.Fatalf("first event %+v, %v", ev, err)
	}
	grace := cfg.Server.ShutdownTimeout + 5*time.Second
	start := time.Now()
	docker.must(t, "stop", "--time", fmt.Sprint(int(grace.Seconds())), ctr)
	took := time.Since(start)
	if _, err := nextEvent(p); !errors.Is(err, io.EOF) {
		t.Errorf("stream after docker stop: %v, want its end", err)
	}
	if code := docker.must(t, "inspect", "--format", "{{.State.ExitCode}}", ctr); code != "0" {
		t.Errorf("exit code %s after docker stop, want 0; logs:\n%s", code, logs())
	}
	if took > cfg.Server.ShutdownTimeout {
		t.Errorf("docker stop took %v, more than server.shutdown_timeout %v", took, cfg.Server.ShutdownTimeout)
	}
	t.Logf("docker stop took %v", took.Round(time.Millisecond))

	checkImageConfig(t, docker, image)
	checkEmbeddedNATSStore(t, docker, image)
	checkArbitraryUser(t, docker, image)
	checkSystemRoots(t, docker, image)
}

// buildImage builds the image of the build context dir under a tag of its
// own and returns the tag, removed when the test ends. The builder's cache
// may give the build an image that others have too (another run's, or a
// user's of the same content): removing the tag, not the image by its ID,
// removes the image only with the last tag that names it.
func buildImage(t *testing.T, docker *dockerEngine, dir string) string {
	t.Helper()
	image := fmt.Sprintf("ssehub-test:%d-%d", os.Getpid(), time.Now().UnixNano())
	docker.must(t, "build", "--quiet", "--tag", image, dir)
	t.Cleanup(func() { // after the containers using it are removed
		if _, err := docker.run("rmi", image); err != nil {
			t.Error(err)
		}
	})
	return image
}

// TestDockerImageOfItsOwn: two builds of the same image, as two test runs
// on one Docker engine make at the same time, may be one image (the
// builder's cache gives the second the first's), and a run's image must
// outlive the end of the other run: removing the image by its ID took it
// from under the other run, whose next `docker run` found no such image.
func TestDockerImageOfItsOwn(t *testing.T) {
	if testing.Short() {
		t.Skip("builds the Docker image")
	}
	if testTransport != "gin" {
		t.Skip("tested once, in the gin pass")
	}
	docker := useDocker(t)
	image := buildImage(t, docker, imageContext(t))
	t.Run("other run", func(t *testing.T) {
		buildImage(t, docker, imageContext(t))
	})
	if _, err := docker.run("image", "inspect", image); err != nil {
		t.Errorf("the image built first, once the other run has ended: %v", err)
	}
}

// checkImageConfig runs image with its own config, the repository's
// config/ssehub.yaml, and nothing but the address set: it serves the demo
// page, and the page's publish to a demo topic from its own origin is
// taken. The config file came from a checkout whose modes the image's user
// may not read (checkoutFileMode): it must read the image's copy anyway.
func checkImageConfig(t *testing.T, docker *dockerEngine, image string) {
	t.Helper()
	ctr, addr := runListening(t, docker, func(addr string) []string {
		return []string{"run", "--detach", "--network", "host", "--env", "SSEHUB_SERVER_ADDR=" + addr, image}
	})
	logs := func() string { return docker.logs(ctr) }
	client := &http.Client{Timeout: 30 * time.Second}
	base := "http://" + addr
	waitHealthz(t, client, base, logs)
	resp, err := client.Get(base + "/")
	if err != nil {
		t.Fatal(err)
	}
	page, err := io.ReadAll(resp.Body)
	resp.Body.Close()
	if err != nil {
		t.Fatal(err)
	}
	if resp.StatusCode != http.StatusOK || !strings.HasPrefix(resp.Header.Get("Content-Type"), "text/html") || !strings.Contains(string(page), "<script") {
		t.Errorf("GET / with the image's config: %s, %q, %d bytes; want the demo page", resp.Status, resp.Header.Get("Content-Type"), len(page))
	}
	req, _ := http.NewRequest(http.MethodPost, base+"/api/v1/topics/demo.chat/events", strings.NewReader(`{"data": "hello"}`))
	req.Header.Set("Origin", base)
	req.Header.Set("Content-Type", "application/json")
	resp, err = client.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusCreated {
		t.Errorf("the page's publish to demo.chat from its own origin %s: %s, want 201 Created; logs:\n%s", base, resp.Status, logs())
	}
}

// systemRoots is where Go's crypto/x509 looks first, on Linux, for the
// system's CA certificates.
const systemRoots = "/etc/ssl/certs/ca-certificates.crt"

// checkSystemRoots: the image holds CA certificates where Go looks for the
// system's, so that a TLS connection without a CA file of its own
// (nats.ca_file empty: "the system's CAs") can verify a certificate from a
// public CA, as a hosted NATS service's is. A scratch image has none of its
// own: each such connection failed, "certificate signed by unknown
// authority", and ssehub did not start.
func checkSystemRoots(t *testing.T, docker *dockerEngine, image string) {
	t.Helper()
	ctr := docker.must(t, "create", image)
	t.Cleanup(func() {
		if _, err := docker.run("rm", "--force", ctr); err != nil {
			t.Error(err)
		}
	})
	dir := t.TempDir()
	if _, err := docker.run("cp", ctr+":"+systemRoots, dir); err != nil {
		t.Fatalf("the image has no CA certificates at %s: %v", systemRoots, err)
	}
	pem, err := os.ReadFile(filepath.Join(dir, filepath.Base(systemRoots)))
	if err != nil {
		t.Fatal(err)
	}
	if !x509.NewCertPool().AppendCertsFromPEM(pem) {
		t.Errorf("the image's %s holds no certificate", systemRoots)
	}
}

// imageContext writes a build context for the Dockerfile's final stage and
// returns its folder: the stage itself (from the last `FROM scratch` line
// on), its `COPY --from=build /out/ssehub` made a COPY of the binary built
// as the build stage builds it, its config and the store's folder from the
// build stage ones written as the stage's install lines write them, and
// the repository's files its other COPY lines name, with a checkout's
// modes under umask 027.
func imageContext(t *testing.T) string {
	t.Helper()
	df := readRepoFile(t, "Dockerfile")
	froms := regexp.MustCompile(`(?m)^FROM scratch\b`).FindAllStringIndex(df, -1)
	if froms == nil {
		t.Fatal("Dockerfile: no `FROM scratch` stage")
	}
	stage := df[froms[len(froms)-1][0]:]
	const fromBuild = "COPY --from=build /out/ssehub "
	if !strings.Contains(stage, fromBuild) {
		t.Fatalf("Dockerfile's final stage lacks %q", fromBuild)
	}
	stage = strings.Replace(stage, fromBuild, "COPY out/ssehub ", 1)
	// The build stage's CA certificates, its distribution's: this host's
	// stand in for them.
	const rootsFromBuild = "COPY --from=build " + systemRoots + " "
	hostRoots := strings.Contains(stage, rootsFromBuild)
	stage = strings.Replace(stage, rootsFromBuild, "COPY out/ca-certificates.crt ", 1)
	// The example config, as the build stage's install line leaves it.
	const configFromBuild = "COPY --from=build /out/config/ssehub.yaml "
	if !strings.Contains(stage, configFromBuild) {
		t.Fatalf("Dockerfile's final stage lacks %q", configFromBuild)
	}
	stage = strings.Replace(stage, configFromBuild, "COPY out/config/ssehub.yaml ", 1)
	install := regexp.MustCompile(`(?m)^RUN install -D -m (0[0-7]{3}) config/ssehub\.yaml /out/config/ssehub\.yaml$`).FindStringSubmatch(df)
	if install == nil {
		t.Fatal("Dockerfile: no `RUN install -D -m MODE config/ssehub.yaml /out/config/ssehub.yaml` line")
	}
	// The store's folder, as the build stage's install lines leave it.
	dataFromBuild := regexp.MustCompile(`(?m)^COPY --from=build (--chown=\S+ )?/out/store /app$`)
	if !dataFromBuild.MatchString(stage) {
		t.Fatal("Dockerfile's final stage lacks `COPY --from=build [--chown=...] /out/store /app`")
	}
	stage = dataFromBuild.ReplaceAllString(stage, "COPY ${1}out/store /app")
	dataDir := regexp.MustCompile(`(?m)^RUN install -d -m (0[0-7]{3}) /out/store/data$`).FindStringSubmatch(df)
	dataReadme := regexp.MustCompile(`(?m)^RUN install -m (0[0-7]{3}) deploy/data/README /out/store/data/README$`).FindStringSubmatch(df)
	if dataDir == nil || dataReadme == nil {
		t.Fatal("Dockerfile: no `RUN install -d -m MODE /out/store/data` and `RUN install -m MODE deploy/data/README /out/store/data/README` lines")
	}
	if strings.Contains(stage, "--from=") {
		t.Fatal("Dockerfile's final stage copies from another stage besides /out/ssehub, /out/config/ssehub.yaml, /out/store and " + systemRoots)
	}

	dir := t.TempDir()
	buildLikeDockerfile(t, filepath.Join(dir, "out/ssehub"))
	writeInstalled(t, filepath.Join(dir, "out/config/ssehub.yaml"), readRepoFile(t, "config/ssehub.yaml"), install[1])
	writeInstalled(t, filepath.Join(dir, "out/store/data/README"), readRepoFile(t, "deploy/data/README"), dataReadme[1])
	if err := os.Chmod(filepath.Join(dir, "out/store/data"), parseMode(t, dataDir[1])); err != nil {
		t.Fatal(err)
	}
	if hostRoots {
		pem, err := os.ReadFile(systemRoots)
		if err != nil {
			t.Skipf("this host has no CA certificates to stand in for the build stage's: %v", err)
		}
		if err := os.WriteFile(filepath.Join(dir, "out/ca-certificates.crt"), pem, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	for _, m := range regexp.MustCompile(`(?m)^COPY (?:--chown=\S+ )?(\S+) \S+$`).FindAllStringSubmatch(stage, -1) {
		if strings.HasPrefix(m[1], "out/") {
			continue
		}
		copyRepoPath(t, m[1], dir)
	}
	if err := os.WriteFile(filepath.Join(dir, "Dockerfile"), []byte(stage), 0o644); err != nil {
		t.Fatal(err)
	}
	return dir
}

// writeInstalled writes content to the file path with the octal mode, as
// `install -D -m mode` does, past the umask.
func writeInstalled(t *testing.T, path, content, mode string) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, []byte(content), parseMode(t, mode)); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(path, parseMode(t, mode)); err != nil { // past the umask
		t.Fatal(err)
	}
}

// parseMode parses an octal file mode, such as 0644.
func parseMode(t *testing.T, mode string) fs.FileMode {
	t.Helper()
	m, err := strconv.ParseUint(mode, 8, 32)
	if err != nil {
		t.Fatal(err)
	}
	return fs.FileMode(m)
}

// Modes of a checkout made under umask 027 (CIS benchmarks set it on
// build hosts): the image's user is neither the owner of its files nor in
// their group. A COPY keeps a file's mode.
const (
	checkoutFileMode fs.FileMode = 0o640
	checkoutDirMode  fs.FileMode = 0o750
)

// copyRepoPath copies the repository's file or folder path into the
// folder dir, at the same relative path, with the modes of a checkout
// made under umask 027.
func copyRepoPath(t *testing.T, path, dir string) {
	t.Helper()
	err := filepath.WalkDir(filepath.Join(repoRoot, path), func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		rel, err := filepath.Rel(repoRoot, p)
		if err != nil {
			return err
		}
		for d := filepath.Dir(rel); d != "."; d = filepath.Dir(d) {
			if err := os.MkdirAll(filepath.Join(dir, d), checkoutDirMode); err != nil {
				return err
			}
			if err := os.Chmod(filepath.Join(dir, d), checkoutDirMode); err != nil { // past the umask
				return err
			}
		}
		file := filepath.Join(dir, rel)
		if err := os.WriteFile(file, []byte(readRepoFile(t, rel)), checkoutFileMode); err != nil {
			return err
		}
		return os.Chmod(file, checkoutFileMode)
	})
	if err != nil {
		t.Fatal(err)
	}
}

// checkEmbeddedNATSStore runs image with the embedded NATS server and a
// new named volume at /app/data, as README tells: the store, data/nats,
// must be writable by the image's user, and a publish stored in it.
func checkEmbeddedNATSStore(t *testing.T, docker *dockerEngine, image string) {
	t.Helper()
	volume := fmt.Sprintf("ssehub-test-%d", time.Now().UnixNano())
	t.Cleanup(func() { // after the containers using it are removed
		if _, err := docker.run("volume", "rm", "--force", volume); err != nil {
			t.Error(err)
		}
	})
	publishToEmbeddedStore(t, docker, image, "--mount", "type=volume,source="+volume+",target=/app/data")
}

// checkArbitraryUser runs image as a platform that assigns each container
// a uid of its own, in group 0, does (OpenShift): the embedded NATS
// server's store in the image's /app/data must be writable by that user
// too, through the group.
func checkArbitraryUser(t *testing.T, docker *dockerEngine, image string) {
	t.Helper()
	publishToEmbeddedStore(t, docker, image, "--user", "1000650000:0")
}

// publishToEmbeddedStore runs image with the embedded NATS server and the
// docker run options opts, and publishes an event, which the server
// stores in data/nats.
func publishToEmbeddedStore(t *testing.T, docker *dockerEngine, image string, opts ...string) {
	t.Helper()
	ctr, addr := runListening(t, docker, func(addr string) []string {
		args := append([]string{"run", "--detach", "--network", "host"}, opts...)
		return append(args,
			"--env", "SSEHUB_SERVER_ADDR="+addr,
			"--env", "SSEHUB_HUB_BROKER=nats", "--env", "SSEHUB_NATS_EMBEDDED=true",
			"--env", "SSEHUB_AUTH_PUBLISH_TOKENS=store-test-token",
			image,
		)
	})
	logs := func() string { return docker.logs(ctr) }
	client := &http.Client{Timeout: 30 * time.Second}
	base := "http://" + addr
	waitHealthz(t, client, base, logs)
	req, _ := http.NewRequest(http.MethodPost, base+"/api/v1/topics/store.test/events", strings.NewReader(`{"data": "kept"}`))
	req.Header.Set("Authorization", "Bearer store-test-token")
	req.Header.Set("Content-Type", "application/json")
	resp, err := client.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusCreated {
		t.Fatalf("publish to the embedded NATS in the image: %s; logs:\n%s", resp.Status, logs())
	}
}

// changedConfigCopy copies the config folder src, readable by the
// container's user, with one value changed in ssehub.yaml that only the
// mount can bring: demo.ticker_count. It returns the copy and that value.
func changedConfigCopy(t *testing.T, src string) (dir string, tickerCount int) {
	t.Helper()
	dir = filepath.Join(t.TempDir(), "config")
	if err := os.Mkdir(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	files, err := os.ReadDir(src)
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range files {
		b, err := os.ReadFile(filepath.Join(src, f.Name()))
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dir, f.Name()), b, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	file := filepath.Join(dir, "ssehub.yaml")
	shipped, err := config.Load([]string{"--config", file}, func(string) string { return "" })
	if err != nil {
		t.Fatal(err)
	}
	tickerCount = 3
	if shipped.Demo.TickerCount == tickerCount {
		tickerCount = 4
	}
	b, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	key := regexp.MustCompile(`(?m)^(\s+ticker_count:) \d+$`)
	if !key.Match(b) {
		t.Fatal("config/ssehub.yaml: no `ticker_count: N` line")
	}
	b = key.ReplaceAll(b, []byte(fmt.Sprintf("${1} %d", tickerCount)))
	if err := os.WriteFile(file, b, 0o644); err != nil {
		t.Fatal(err)
	}
	return dir, tickerCount
}

// runListening runs a container on the host's network whose ssehub
// listens on the loopback address it is given: args returns the docker run
// arguments for one. It returns the container, removed when the test ends,
// and the address, once ssehub has logged that it listens there.
//
// The image's HEALTHCHECK dials server.addr, so the port cannot be 0: it
// is one that was free a moment ago (freePort). Another process (a test of
// another package, run at the same time) may take it first; ssehub then
// exits with "address already in use", and runListening tries another.
// Waiting for the log line rather than for an answer on the port keeps
// another process's server from passing for the container's.
func runListening(t *testing.T, docker *dockerEngine, args func(addr string) []string) (ctr, addr string) {
	t.Helper()
	const attempts = 5
	for attempt := 1; ; attempt++ {
		addr := "127.0.0.1:" + freePort(t)
		ctr := docker.must(t, args(addr)...)
		t.Cleanup(func() {
			if _, err := docker.run("rm", "--force", ctr); err != nil {
				t.Error(err)
			}
		})
		err := waitContainerListening(t, docker, ctr, addr)
		if err == nil {
			return ctr, addr
		}
		if !errors.Is(err, errPortTaken) || attempt == attempts {
			t.Fatal(err)
		}
		t.Logf("trying another port after attempt %d: %v", attempt, err)
	}
}

// waitContainerListening waits until the ssehub in container ctr logs
// that it listens on addr. Its error wraps errPortTaken when ssehub could
// not listen because the address was in use; it fails the test if the
// container stops for another reason, or after containerUpTimeout.
func waitContainerListening(t *testing.T, docker *dockerEngine, ctr, addr string) error {
	t.Helper()
	for deadline := time.Now().Add(containerUpTimeout); ; {
		// Whether it runs is read before its log: a container that had
		// stopped then has written all of its log.
		running := docker.must(t, "inspect", "--format", "{{.State.Running}}", ctr)
		logs := docker.logs(ctr)
		for line := range strings.Lines(logs) {
			// The text or the JSON log line: msg=listening addr=…, or
			// "msg":"listening","addr":"…".
			if strings.Contains(line, "listening") && strings.Contains(line, addr) {
				return nil
			}
		}
		if strings.Contains(logs, "address already in use") {
			return fmt.Errorf("ssehub in a container on %s: %w; logs:\n%s", addr, errPortTaken, logs)
		}
		if running != "true" {
			t.Fatalf("the container stopped before ssehub listened on %s; logs:\n%s", addr, logs)
		}
		if time.Now().After(deadline) {
			t.Fatalf("ssehub in the container logged no listening on %s after %v; logs:\n%s", addr, containerUpTimeout, logs)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// waitHealthz waits until base answers /healthz from the host.
func waitHealthz(t *testing.T, client *http.Client, base string, logs func() string) {
	t.Helper()
	for deadline := time.Now().Add(containerUpTimeout); ; {
		resp, err := client.Get(base + "/healthz")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("/healthz from the host: %v %v after %v; logs:\n%s", resp, err, containerUpTimeout, logs())
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// waitHealthy waits until Docker reports the container healthy.
func waitHealthy(t *testing.T, docker *dockerEngine, ctr string, logs func() string) {
	t.Helper()
	for deadline := time.Now().Add(containerHealthyTimeout); ; {
		status := docker.must(t, "inspect", "--format", "{{.State.Health.Status}}", ctr)
		if status == "healthy" {
			return
		}
		if status == "unhealthy" || time.Now().After(deadline) {
			health, _ := docker.run("inspect", "--format", "{{json .State.Health}}", ctr)
			t.Fatalf("health %q (waiting at most %v): %s; logs:\n%s", status, containerHealthyTimeout, health, logs())
		}
		time.Sleep(250 * time.Millisecond)
	}
}

// checkProcessIDs checks that the process pid runs with uid and gid id,
// real, effective, saved and filesystem alike.
func checkProcessIDs(t *testing.T, pid, id string) {
	t.Helper()
	b, err := os.ReadFile("/proc/" + pid + "/status")
	if err != nil {
		t.Fatal(err)
	}
	want := strings.Repeat("\t"+id, 4)
	for _, field := range []string{"Uid:", "Gid:"} {
		found := false
		for _, line := range strings.Split(string(b), "\n") {
			if strings.HasPrefix(line, field) {
				found = true
				if strings.TrimPrefix(line, field) != want {
					t.Errorf("container process %s %q, want %s everywhere", field, line, id)
				}
			}
		}
		if !found {
			t.Errorf("/proc/%s/status has no %s line", pid, field)
		}
	}
}
