package main

import (
	"bufio"
	"debug/elf"
	"errors"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/compose-spec/compose-go/v2/cli"
	"github.com/compose-spec/compose-go/v2/types"
	"github.com/ssehub/ssehub/config"
)

// repoRoot is where the Dockerfile, the compose file and go.mod live.
const repoRoot = "../.."

func readRepoFile(t *testing.T, name string) string {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(repoRoot, name))
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// dockerBuild returns the `go build` command line of the Dockerfile.
func dockerBuild(t *testing.T) (flags string) {
	t.Helper()
	m := regexp.MustCompile(`(?m)^RUN CGO_ENABLED=0 go build (.+) -o /out/ssehub \./cmd/ssehub$`).FindStringSubmatch(readRepoFile(t, "Dockerfile"))
	if m == nil {
		t.Fatal("Dockerfile: no `RUN CGO_ENABLED=0 go build ... -o /out/ssehub ./cmd/ssehub` line")
	}
	return m[1]
}

// buildLikeDockerfile builds the binary to out with the Dockerfile's own
// `go build` command line.
func buildLikeDockerfile(t *testing.T, out string) {
	t.Helper()
	goBuild(t, out, "./cmd/ssehub")
}

func TestDockerfile(t *testing.T) {
	df := readRepoFile(t, "Dockerfile")
	flags := dockerBuild(t)
	if mk := readRepoFile(t, "Makefile"); !strings.Contains(mk, "BUILD_FLAGS = "+flags+"\n") {
		t.Errorf("Makefile BUILD_FLAGS differ from the Dockerfile's %q", flags)
	}
	for _, want := range []string{
		"FROM scratch",
		"USER 65532:65532",
		"EXPOSE 8111",
		`CMD ["/usr/local/bin/ssehub", "healthcheck"]`,
		`ENTRYPOINT ["/usr/local/bin/ssehub"]`,
		"COPY --from=build /out/config/ssehub.yaml /app/config/ssehub.yaml",
	} {
		if !strings.Contains(df, want) {
			t.Errorf("Dockerfile lacks %q", want)
		}
	}
}

// TestDockerignore keeps what .gitignore ignores, a developer's own files,
// out of the Dockerfile's build context too, where `COPY . .` takes all
// of it into the build stage: the embedded NATS server's store, data/ (the
// README's `go run` with nats.embedded), went to every build, and any
// change in it rebuilt the binary.
func TestDockerignore(t *testing.T) {
	ignored := map[string]bool{}
	for _, line := range strings.Split(readRepoFile(t, ".dockerignore"), "\n") {
		if line = strings.TrimSpace(line); line != "" && !strings.HasPrefix(line, "#") {
			ignored[strings.Trim(line, "/")] = true
		}
	}
	for _, line := range strings.Split(readRepoFile(t, ".gitignore"), "\n") {
		line = strings.TrimSpace(line)
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		// A .gitignore pattern with no slash but a last one matches at
		// any depth; a .dockerignore pattern, from the root only.
		want := strings.Trim(line, "/")
		if !strings.Contains(strings.TrimSuffix(line, "/"), "/") {
			want = "**/" + want
		}
		if !ignored[want] {
			t.Errorf(".dockerignore lacks %q: .gitignore's %q", want, line)
		}
	}
}

// loadCompose loads docker-compose.yml as Docker Compose would, paths
// resolved against the repository.
func loadCompose(t *testing.T) *types.Project {
	t.Helper()
	return loadComposeFile(t, "docker-compose.yml")
}

// loadComposeFile loads the compose file name, at the repository's root,
// as Docker Compose would, paths resolved against the repository.
func loadComposeFile(t *testing.T, name string) *types.Project {
	t.Helper()
	opts, err := cli.NewProjectOptions([]string{filepath.Join(repoRoot, name)},
		cli.WithWorkingDirectory(repoRoot), cli.WithName("ssehub"))
	if err != nil {
		t.Fatal(err)
	}
	project, err := opts.LoadProject(t.Context())
	if err != nil {
		t.Fatalf("%s does not validate: %v", name, err)
	}
	return project
}

// composeEnv returns a service's environment as a getenv function.
func composeEnv(svc types.ServiceConfig) func(string) string {
	return func(k string) string {
		if v := svc.Environment[k]; v != nil {
			return *v
		}
		return ""
	}
}

// checkComposeEnvNames checks the SSEHUB_ names of the ssehub service
// name's environment as the binary does before anything else
// (config.CheckEnv): a misspelt one stops its start-up. config.Load, handed
// composeEnv, asks for the names it knows only, so it cannot see one.
func checkComposeEnvNames(t *testing.T, name string, svc types.ServiceConfig) {
	t.Helper()
	var environ []string
	for k, v := range svc.Environment {
		value := ""
		if v != nil {
			value = *v
		}
		environ = append(environ, k+"="+value)
	}
	if err := config.CheckEnv(environ); err != nil {
		t.Errorf("%s's environment stops ssehub at start: %v", name, err)
	}
}

// stopMargin is what a stop takes past server.shutdown_timeout: the
// detached streams' grace (closedStreamsGrace), closing the broker, and
// stopping an embedded NATS server.
const stopMargin = 3 * time.Second

// checkStopGrace checks that Docker gives the ssehub service name, whose
// config is cfg, time for its graceful shutdown before it sends SIGKILL:
// its stop_grace_period must exceed server.shutdown_timeout by stopMargin.
// Docker's default, 10s, is the shutdown timeout's own default, so a
// shutdown that took its whole bound was killed (exit 137).
func checkStopGrace(t *testing.T, name string, svc types.ServiceConfig, cfg config.Config) {
	t.Helper()
	want := cfg.Server.ShutdownTimeout + stopMargin
	if svc.StopGracePeriod == nil {
		t.Errorf("%s has no stop_grace_period: Docker's default 10s kills a shutdown that takes server.shutdown_timeout (%v); want %v or more",
			name, cfg.Server.ShutdownTimeout, want)
		return
	}
	if got := time.Duration(*svc.StopGracePeriod); got < want {
		t.Errorf("%s stop_grace_period %v, want %v or more: server.shutdown_timeout (%v) and %v for what follows it",
			name, got, want, cfg.Server.ShutdownTimeout, stopMargin)
	}
}

func TestComposeFile(t *testing.T) {
	project := loadCompose(t)
	svc, ok := project.Services["ssehub"]
	if !ok {
		t.Fatal("no ssehub service")
	}
	if svc.Build == nil || svc.Build.Context == "" {
		t.Error("ssehub is not built from the Dockerfile")
	}
	if len(svc.Ports) != 1 || svc.Ports[0].Target != 8111 || svc.Ports[0].Published != "8111" {
		t.Errorf("ssehub ports %+v, want 8111:8111", svc.Ports)
	}
	if len(svc.Volumes) != 1 || filepath.Base(svc.Volumes[0].Source) != "config" || svc.Volumes[0].Target != "/app/config" || !svc.Volumes[0].ReadOnly {
		t.Errorf("ssehub volumes %+v, want ./config read-only at /app/config", svc.Volumes)
	}

	// The service's environment over the mounted config must be a valid
	// config that allows the second origin.
	checkComposeEnvNames(t, "ssehub", svc)
	cfg, err := config.Load([]string{"--config", filepath.Join(repoRoot, "config/ssehub.yaml")}, composeEnv(svc))
	if err != nil {
		t.Fatalf("the compose config does not load: %v", err)
	}
	checkStopGrace(t, "ssehub", svc, cfg)

	web, ok := project.Services["web"]
	if !ok {
		t.Fatal("no web service: the second origin")
	}
	if len(web.Ports) != 1 || web.Ports[0].Target != 80 {
		t.Fatalf("web ports %+v", web.Ports)
	}
	webOrigin := "http://localhost:" + web.Ports[0].Published
	if !cfg.CORS.AllowOrigin(webOrigin) {
		t.Errorf("the web service's origin %s is not allowed by the compose config", webOrigin)
	}
	// The page's files at the root of deploy/nginx-demo.conf, which
	// replaces the image's default server: it serves them with ssehub's
	// headers, and nothing else of the folder
	// (TestNginxDemoServesTheFilesAsSsehub).
	wantVolumes := []types.ServiceVolumeConfig{
		{Type: types.VolumeTypeBind, Source: mustAbs(t, filepath.Join(repoRoot, "static")), Target: demoNginxRoot, ReadOnly: true},
		{Type: types.VolumeTypeBind, Source: mustAbs(t, filepath.Join(repoRoot, demoNginxConf)), Target: "/etc/nginx/conf.d/default.conf", ReadOnly: true},
	}
	if len(web.Volumes) != len(wantVolumes) {
		t.Fatalf("web volumes %+v, want ./static and %s", web.Volumes, demoNginxConf)
	}
	for i, want := range wantVolumes {
		got := web.Volumes[i]
		if got.Type != want.Type || got.Source != want.Source || got.Target != want.Target || got.ReadOnly != want.ReadOnly {
			t.Errorf("web volume %d %+v, want %s at %s, read-only", i, got, want.Source, want.Target)
		}
	}
	conf := readRepoFile(t, demoNginxConf)
	if !strings.Contains(conf, "\n    root "+demoNginxRoot+";\n") {
		t.Errorf("%s's root is not %s, where the web service mounts ./static", demoNginxConf, demoNginxRoot)
	}
	if !strings.Contains(conf, "\n    listen 80;\n") {
		t.Errorf("%s does not listen on port 80, the web service's published port's target", demoNginxConf)
	}
	if !strings.HasPrefix(web.Image, "nginx:") {
		t.Errorf("web image %q, want the official nginx image, whose conf.d %s replaces the default server of", web.Image, demoNginxConf)
	}
}

// TestDockerBinary builds the binary exactly as the Dockerfile does, checks
// it is static, and runs it as the image would: from a folder holding only
// config/ssehub.yaml, health-checked by itself, stopped by SIGTERM.
func TestDockerBinary(t *testing.T) {
	if testing.Short() {
		t.Skip("builds the binary")
	}
	dir := t.TempDir()
	bin := filepath.Join(dir, "ssehub")
	buildLikeDockerfile(t, bin)
	f, err := elf.Open(bin)
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range f.Progs {
		if p.Type == elf.PT_INTERP {
			t.Error("the binary needs a dynamic loader: not static")
		}
	}
	f.Close()

	app := filepath.Join(dir, "app")
	if err := os.MkdirAll(filepath.Join(app, "config"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(app, "config/ssehub.yaml"), []byte(readRepoFile(t, "config/ssehub.yaml")), 0o644); err != nil {
		t.Fatal(err)
	}

	srv := exec.Command(bin)
	srv.Dir = app
	srv.Env = []string{"SSEHUB_SERVER_ADDR=127.0.0.1:0", "SSEHUB_LOG_FORMAT=json"}
	logs, err := srv.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := srv.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = srv.Process.Kill() })
	lines := bufio.NewScanner(logs)
	addr := ""
	for addr == "" && lines.Scan() {
		if m := regexp.MustCompile(`"msg":"listening","addr":"([^"]+)"`).FindStringSubmatch(lines.Text()); m != nil {
			addr = m[1]
		}
	}
	if addr == "" {
		t.Fatalf("no listening line in the logs: %v", lines.Err())
	}
	go func() { _, _ = io.Copy(io.Discard, logs) }()

	health := exec.Command(bin, "healthcheck")
	health.Dir = app
	health.Env = []string{"SSEHUB_SERVER_ADDR=" + addr}
	if out, err := health.CombinedOutput(); err != nil {
		t.Fatalf("ssehub healthcheck: %v\n%s", err, out)
	}

	p := tickerStarted(t, addr)
	if err := srv.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	if _, err := nextEvent(p); !errors.Is(err, io.EOF) {
		t.Errorf("stream after SIGTERM: %v, want its end", err)
	}
	exited := make(chan error, 1)
	go func() { exited <- srv.Wait() }()
	select {
	case err := <-exited:
		if err != nil {
			t.Errorf("after SIGTERM: %v, want exit 0", err)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("still running 30s after SIGTERM")
	}

	// A misspelt variable stops start-up, naming it.
	typo := exec.Command(bin)
	typo.Dir = app
	typo.Env = []string{"SSEHUB_SERVER_ADDR=127.0.0.1:0", "SSEHUB_STREAM_HEARTBEAT=5s"}
	out, err := typo.CombinedOutput()
	if err == nil || !strings.Contains(string(out), "SSEHUB_STREAM_HEARTBEAT: ") || !strings.Contains(string(out), "SSEHUB_STREAM_HEARTBEAT_INTERVAL?") {
		t.Errorf("with SSEHUB_STREAM_HEARTBEAT set: %v\n%s\nwant a failed start naming it", err, out)
	}
}
