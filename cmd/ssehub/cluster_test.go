package main

import (
	"maps"
	"net"
	"net/url"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/compose-spec/compose-go/v2/cli"
	"github.com/compose-spec/compose-go/v2/types"
	"github.com/ssehub/ssehub/config"
)

// The cluster compose file's parts: docker-compose.cluster.yml and the
// nginx config it mounts.
const (
	clusterCompose = "docker-compose.cluster.yml"
	clusterNginx   = "deploy/nginx-cluster.conf"
	// nginx's own nginx.conf, with the README's main context lines.
	clusterNginxMain = "deploy/nginx.conf"
)

// TestComposeCluster checks docker-compose.cluster.yml: a NATS server with
// JetStream storing on a named volume, two ssehub replicas on the NATS
// broker that wait for it, and nginx in front of both with
// deploy/nginx-cluster.conf.
func TestComposeCluster(t *testing.T) {
	project := loadComposeFile(t, clusterCompose)
	if names := slices.Sorted(maps.Keys(project.Services)); !slices.Equal(names, []string{"nats", "nginx", "ssehub-1", "ssehub-2"}) {
		t.Fatalf("services %q, want nats, nginx, ssehub-1, ssehub-2", names)
	}

	nats := project.Services["nats"]
	if !strings.HasPrefix(nats.Image, "nats:") {
		t.Errorf("nats image %q, want the official nats image", nats.Image)
	}
	if cmd := strings.Join(nats.Command, " "); !strings.Contains(cmd, "-js") || !strings.Contains(cmd, "-sd /data") {
		t.Errorf("nats command %q, want JetStream on (-js) storing in /data (-sd /data)", cmd)
	}
	if len(nats.Volumes) != 1 || nats.Volumes[0].Type != types.VolumeTypeVolume || nats.Volumes[0].Target != "/data" {
		t.Fatalf("nats volumes %+v, want a named volume at /data", nats.Volumes)
	}
	if _, ok := project.Volumes[nats.Volumes[0].Source]; !ok {
		t.Errorf("nats's volume %q is not declared under volumes:", nats.Volumes[0].Source)
	}
	if nats.HealthCheck == nil || nats.HealthCheck.Disable {
		t.Error("nats has no health check for the replicas to wait on")
	}

	var upstreams []string
	for _, name := range []string{"ssehub-1", "ssehub-2"} {
		upstreams = append(upstreams, checkReplica(t, name, project.Services[name]))
	}

	nginx := project.Services["nginx"]
	if !strings.HasPrefix(nginx.Image, "nginx:") {
		t.Errorf("nginx image %q", nginx.Image)
	}
	if len(nginx.Ports) != 1 || nginx.Ports[0].Target != 80 || nginx.Ports[0].Published != "8111" {
		t.Errorf("nginx ports %+v, want 8111:80", nginx.Ports)
	}
	wantMounts := []types.ServiceVolumeConfig{
		{Type: types.VolumeTypeBind, Source: mustAbs(t, filepath.Join(repoRoot, clusterNginx)), Target: "/etc/nginx/conf.d/default.conf", ReadOnly: true},
		{Type: types.VolumeTypeBind, Source: mustAbs(t, filepath.Join(repoRoot, clusterNginxMain)), Target: "/etc/nginx/nginx.conf", ReadOnly: true},
	}
	if len(nginx.Volumes) != len(wantMounts) {
		t.Errorf("nginx volumes %+v, want %s and %s mounted", nginx.Volumes, clusterNginx, clusterNginxMain)
	}
	for i := range min(len(nginx.Volumes), len(wantMounts)) {
		got, want := nginx.Volumes[i], wantMounts[i]
		if got.Type != want.Type || got.Source != want.Source || got.Target != want.Target || got.ReadOnly != want.ReadOnly {
			t.Errorf("nginx volume %d: %s %s at %s (read-only %v), want %s read-only at %s", i+1, got.Type, got.Source, got.Target, got.ReadOnly, want.Source, want.Target)
		}
	}
	// A container may not raise its hard limit of descriptors: nginx's
	// worker_rlimit_nofile needs compose to.
	if nofile := nginx.Ulimits["nofile"]; nofile == nil || max(nofile.Single, nofile.Hard) < 65536 {
		t.Errorf("nginx ulimits %+v, want nofile 65536 for worker_rlimit_nofile", nginx.Ulimits)
	}
	for _, name := range []string{"ssehub-1", "ssehub-2"} {
		if dep, ok := nginx.DependsOn[name]; !ok || dep.Condition != types.ServiceConditionHealthy {
			t.Errorf("nginx depends_on %s: %+v, want service_healthy", name, dep)
		}
	}
	servers := regexp.MustCompile(`(?m)^\s*server\s+(\S+);`).FindAllStringSubmatch(nginxBlock(t, readRepoFile(t, clusterNginx), "upstream ssehub {"), -1)
	var got []string
	for _, m := range servers {
		got = append(got, m[1])
	}
	if !slices.Equal(got, upstreams) {
		t.Errorf("%s upstream servers %q, want the replicas %q", clusterNginx, got, upstreams)
	}
}

// checkReplica checks one ssehub replica of the cluster file and returns
// its address on the compose network, name:port.
func checkReplica(t *testing.T, name string, svc types.ServiceConfig) string {
	t.Helper()
	if svc.Build == nil || svc.Build.Context != mustAbs(t, repoRoot) {
		t.Errorf("%s is not built from the repository's Dockerfile: %+v", name, svc.Build)
	}
	if len(svc.Ports) != 0 {
		t.Errorf("%s publishes %+v: only nginx should reach it", name, svc.Ports)
	}
	if dep, ok := svc.DependsOn["nats"]; !ok || dep.Condition != types.ServiceConditionHealthy {
		t.Errorf("%s depends_on nats: %+v, want service_healthy", name, dep)
	}
	// Its environment over the image's config must be a valid config on
	// the NATS broker, connecting to the nats service.
	checkComposeEnvNames(t, name, svc)
	cfg, err := config.Load([]string{"--config", filepath.Join(repoRoot, "config/ssehub.yaml")}, composeEnv(svc))
	if err != nil {
		t.Fatalf("%s: the compose config does not load: %v", name, err)
	}
	checkStopGrace(t, name, svc, cfg)
	if !cfg.Hub.NATS() || cfg.NATS.Embedded {
		t.Errorf("%s: hub.broker %q, nats.embedded %v; want nats on the nats service", name, cfg.Hub.Broker, cfg.NATS.Embedded)
	}
	if len(cfg.NATS.URL) != 1 {
		t.Fatalf("%s: nats.url %q, want the nats service", name, cfg.NATS.URL)
	}
	if u, err := url.Parse(cfg.NATS.URL[0]); err != nil || u.Hostname() != "nats" || u.Port() != "4222" {
		t.Errorf("%s: nats.url %q, want nats://nats:4222", name, cfg.NATS.URL)
	}
	_, port, err := net.SplitHostPort(cfg.Server.Addr)
	if err != nil {
		t.Fatal(err)
	}
	return name + ":" + port
}

// TestComposeClusterNginx keeps deploy/nginx-cluster.conf the README's
// nginx recipe: below its comment header it is the recipe, with the
// replicas as upstream servers and the access log on stdout, nothing else.
// The location block, where SSE is made or broken, must match exactly.
func TestComposeClusterNginx(t *testing.T) {
	recipe := readmeNginxRecipe(t)
	conf := readRepoFile(t, clusterNginx)
	if got, want := nginxBlock(t, conf, "location / {"), nginxBlock(t, recipe, "location / {"); got != want {
		t.Errorf("%s's location block differs from the README's:\n%s\nwant:\n%s", clusterNginx, got, want)
	}

	want := recipe
	for _, r := range []struct {
		old, new string
		n        int // times the recipe holds old
	}{
		// upstream ssehub and ssehub_streams
		{"    server 127.0.0.1:8111;\n", "    server ssehub-1:8111;\n    server ssehub-2:8111;\n", 2},
		{"access_log /var/log/nginx/ssehub.access.log ssehub;", "access_log /dev/stdout ssehub;", 1},
	} {
		if n := strings.Count(want, r.old); n != r.n {
			t.Fatalf("the README's nginx recipe holds %q %d times, want %d: update this test with the recipe", r.old, n, r.n)
		}
		want = strings.ReplaceAll(want, r.old, r.new)
	}
	body := conf
	for strings.HasPrefix(body, "#") || strings.HasPrefix(body, "\n") {
		_, body, _ = strings.Cut(body, "\n")
	}
	if got := strings.TrimSpace(body); got != strings.TrimSpace(want) {
		gl, wl := strings.Split(got, "\n"), strings.Split(strings.TrimSpace(want), "\n")
		for i := range max(len(gl), len(wl)) {
			if i >= len(gl) || i >= len(wl) || gl[i] != wl[i] {
				t.Errorf("%s differs from the README's recipe at line %d of its body:\n got %q\nwant %q",
					clusterNginx, i+1, at(gl, i), at(wl, i))
				break
			}
		}
	}
}

// TestComposeClusterNginxMain keeps deploy/nginx.conf, the cluster's
// nginx.conf, holding the README's main context lines as written, and
// including the recipe from conf.d.
func TestComposeClusterNginxMain(t *testing.T) {
	conf := readRepoFile(t, clusterNginxMain)
	if main := readmeNginxMain(t); !strings.Contains(conf, main+"\n") {
		t.Errorf("%s does not hold the README's main context lines as written:\n%s", clusterNginxMain, main)
	}
	if got, want := nginxBlock(t, conf, "http {"), "include /etc/nginx/conf.d/*.conf;"; !strings.Contains(got, want) {
		t.Errorf("%s's http block does not %s, where the recipe is:\n%s", clusterNginxMain, want, got)
	}
}

// at returns lines[i], or "(end)" past the end.
func at(lines []string, i int) string {
	if i < len(lines) {
		return lines[i]
	}
	return "(end)"
}

// nginxBlock returns the block of conf that opens with the line holding
// head, through its closing brace.
func nginxBlock(t *testing.T, conf, head string) string {
	t.Helper()
	start := strings.Index(conf, head)
	if start < 0 {
		t.Fatalf("no %q block in:\n%s", head, conf)
	}
	depth := 0
	for i := start; i < len(conf); i++ {
		switch conf[i] {
		case '{':
			depth++
		case '}':
			if depth--; depth == 0 {
				return conf[start : i+1]
			}
		}
	}
	t.Fatalf("the %q block does not close", head)
	return ""
}

// mustAbs returns path made absolute.
func mustAbs(t *testing.T, path string) string {
	t.Helper()
	abs, err := filepath.Abs(path)
	if err != nil {
		t.Fatal(err)
	}
	return abs
}

// nginxStopMargin is what nginx takes past worker_shutdown_timeout to
// close the streams it still holds and exit.
const nginxStopMargin = 2 * time.Second

// TestComposeClusterNginxStop: the official nginx image stops on SIGQUIT,
// a graceful shutdown, in which the workers wait for the requests they
// hold, streams that never end on their own, until worker_shutdown_timeout
// (deploy/nginx.conf). Docker must give nginx that long before its SIGKILL:
// with Docker's default 10s, `docker compose down` with a stream open
// killed nginx (exit 137).
func TestComposeClusterNginxStop(t *testing.T) {
	nginx := loadComposeFile(t, clusterCompose).Services["nginx"]
	if sig := strings.TrimPrefix(strings.ToUpper(nginx.StopSignal), "SIG"); sig != "" && sig != "QUIT" {
		t.Skipf("nginx stop_signal %s: not the graceful SIGQUIT this test is about", nginx.StopSignal)
	}
	m := regexp.MustCompile(`(?m)^\s*worker_shutdown_timeout\s+(\S+);`).FindStringSubmatch(readRepoFile(t, clusterNginxMain))
	if m == nil {
		t.Fatalf("%s: no worker_shutdown_timeout", clusterNginxMain)
	}
	timeout, err := time.ParseDuration(m[1])
	if err != nil {
		t.Fatalf("%s: worker_shutdown_timeout %q: %v", clusterNginxMain, m[1], err)
	}
	want := timeout + nginxStopMargin
	grace := 10 * time.Second // Docker's default
	if nginx.StopGracePeriod != nil {
		grace = time.Duration(*nginx.StopGracePeriod)
	}
	if grace < want {
		t.Errorf("nginx stop_grace_period %v, want %v or more: a stop with a stream open waits worker_shutdown_timeout (%v, %s) and %v more",
			grace, want, timeout, clusterNginxMain, nginxStopMargin)
	}
}

// TestComposeProjectNames: docker compose names a project after the
// folder of its file unless the file names it, and the two compose files
// share a folder. Under one name, either file's `up` or `down` took the
// other's containers for orphans of its own, and they shared one network.
func TestComposeProjectNames(t *testing.T) {
	names := map[string]string{}
	for _, file := range []string{"docker-compose.yml", clusterCompose} {
		opts, err := cli.NewProjectOptions([]string{filepath.Join(repoRoot, file)}, cli.WithWorkingDirectory(repoRoot))
		if err != nil {
			t.Fatal(err)
		}
		project, err := opts.LoadProject(t.Context())
		if err != nil {
			t.Fatalf("%s does not validate: %v", file, err)
		}
		if other, ok := names[project.Name]; ok {
			t.Errorf("%s and %s are both project %q", other, file, project.Name)
		}
		names[project.Name] = file
	}
}

// TestNginxQuitWaitsForStreams stops nginx, as installed, as the official
// image's STOPSIGNAL does (SIGQUIT, a graceful shutdown) with a stream
// open: the stream is held until worker_shutdown_timeout (2s here, the
// cluster's 30s) and only then closed, so a stop takes that long, which
// TestComposeClusterNginxStop asks the stop_grace_period to allow.
func TestNginxQuitWaitsForStreams(t *testing.T) {
	p, c, events := subscribeBehindInstalledNginx(t)
	c.publish(1)
	c.receive(events, 1)

	signalHoldsTheStream(t, p, c, events, syscall.SIGQUIT, "SIGQUIT")
}
