package main

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/ssehub/ssehub/internal/testpass"
)

// dockerEngine is a Docker engine a test may use, through the docker CLI.
type dockerEngine struct {
	cli string   // the docker CLI
	env []string // the CLI's environment, naming the engine
	// own is true when the test started the engine: a dockerd on this
	// host, run by root, whose containers' processes are visible in /proc.
	own bool
}

// Bounds on talking to a Docker engine.
const (
	dockerCommandTimeout = 2 * time.Minute  // one docker command
	dockerdStartTimeout  = 30 * time.Second // a started dockerd answering
	dockerdStopTimeout   = 20 * time.Second // a started dockerd exiting after SIGTERM
)

// useDocker returns the Docker engine that answers the docker CLI as the
// environment configures it or, when none does, a dockerd it starts for
// this test and stops when the test ends. It skips the test where neither
// is possible: no docker CLI, not root, no dockerd, or a dockerd that does
// not come up (make test installs the docker.io package).
func useDocker(t *testing.T) *dockerEngine {
	t.Helper()
	cli, err := exec.LookPath("docker")
	if err != nil {
		t.Skipf("skipping: no docker CLI (make test installs the docker.io package): %v", err)
	}
	env := append(os.Environ(), "DOCKER_BUILDKIT=0") // BuildKit needs the buildx plugin
	ambient := &dockerEngine{cli: cli, env: env}
	if _, err := ambient.run("version", "--format", "{{.Server.Version}}"); err == nil {
		return ambient
	}
	return startDockerd(t, cli, env)
}

// run runs one docker command and returns its standard output, trimmed.
// Its error includes the command's standard error.
func (e *dockerEngine) run(args ...string) (string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), dockerCommandTimeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, e.cli, args...)
	cmd.Env = e.env
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		return "", fmt.Errorf("docker %s: %w: %s", strings.Join(args, " "), err, strings.TrimSpace(stderr.String()))
	}
	return strings.TrimSpace(string(out)), nil
}

// logs returns a container's output, standard output and error interleaved.
func (e *dockerEngine) logs(ctr string) string {
	ctx, cancel := context.WithTimeout(context.Background(), dockerCommandTimeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, e.cli, "logs", ctr)
	cmd.Env = e.env
	out, err := cmd.CombinedOutput()
	if err != nil {
		return fmt.Sprintf("docker logs: %v\n%s", err, out)
	}
	return string(out)
}

// must runs one docker command and fails the test if it fails.
func (e *dockerEngine) must(t *testing.T, args ...string) string {
	t.Helper()
	out, err := e.run(args...)
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// dockerdPrefix starts the name of startDockerd's folder in the temporary
// directory, followed by the pid of the test process that made it and a
// dash, for removeStaleDockerds.
const dockerdPrefix = "ssehub-dockerd-pid"

// removeStaleDockerds removes the folders of startDockerd in tmp whose test
// process is gone (testpass.RemoveStale): a test binary killed (by go test at its
// -timeout, by a signal) removes none, and leaves its dockerd, and that
// one's containerd, running on it. Each is killed first, then its mounts
// undone.
func removeStaleDockerds(tmp string) {
	testpass.RemoveStale(tmp, dockerdPrefix, func(dir string) error {
		// dockerd first: it would start a containerd killed before it again.
		for _, pidFile := range []string{"dockerd.pid", "exec/containerd/containerd.pid"} {
			if err := killLeftBehind(filepath.Join(dir, pidFile), dir); err != nil {
				return err
			}
		}
		return unmountAndRemove(dir)
	})
}

// killLeftBehind kills the process pidFile names, if it runs and its
// command line names dir (a pid used again since is another process's),
// and waits until it has exited, within dockerdStopTimeout.
func killLeftBehind(pidFile, dir string) error {
	b, err := os.ReadFile(pidFile)
	if err != nil {
		return nil // none written, or dir's process never started
	}
	pid, err := strconv.Atoi(strings.TrimSpace(string(b)))
	if err != nil || pid <= 0 {
		return nil
	}
	cmdline, err := os.ReadFile(fmt.Sprintf("/proc/%d/cmdline", pid))
	if err != nil || !bytes.Contains(cmdline, []byte(dir+"/")) {
		return nil
	}
	_ = syscall.Kill(pid, syscall.SIGKILL) // gone already is fine
	deadline := time.Now().Add(dockerdStopTimeout)
	for !processExited(pid) {
		if time.Now().After(deadline) {
			return fmt.Errorf("process %d (%s) left running %v after SIGKILL", pid, pidFile, dockerdStopTimeout)
		}
		time.Sleep(10 * time.Millisecond)
	}
	return nil
}

// processExited reports whether the process of that pid has exited: gone,
// or a zombie its parent has yet to reap.
func processExited(pid int) bool { return !testpass.ProcessRuns(pid) }

// startDockerd starts a dockerd of its own: its own config file, data,
// state, pid file and socket under one temporary folder, so it neither
// collides with nor depends on a system engine; no bridge network and no
// change to iptables or IP forwarding. The folder is short-named, as unix
// socket paths are limited to 108 bytes.
func startDockerd(t *testing.T, cli string, env []string) *dockerEngine {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("skipping: no Docker engine answers, and starting dockerd needs root")
	}
	dockerd, err := exec.LookPath("dockerd")
	if err != nil {
		t.Skipf("skipping: no Docker engine answers, and no dockerd (make test installs the docker.io package): %v", err)
	}
	dir, err := testpass.MkdirOwned(dockerdPrefix)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "daemon.json"), []byte("{}\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	logPath := filepath.Join(dir, "dockerd.log")
	logFile, err := os.Create(logPath)
	if err != nil {
		t.Fatal(err)
	}
	defer logFile.Close()
	sock := filepath.Join(dir, "docker.sock")
	cmd := exec.Command(dockerd,
		"--config-file", filepath.Join(dir, "daemon.json"),
		"--data-root", filepath.Join(dir, "data"),
		"--exec-root", filepath.Join(dir, "exec"),
		"--pidfile", filepath.Join(dir, "dockerd.pid"),
		"--host", "unix://"+sock,
		"--bridge=none", "--iptables=false", "--ip-forward=false")
	cmd.Stdout, cmd.Stderr = logFile, logFile
	if err := cmd.Start(); err != nil {
		os.RemoveAll(dir)
		t.Skipf("skipping: no Docker engine answers, and dockerd does not start: %v", err)
	}
	exited := make(chan struct{})
	go func() { _ = cmd.Wait(); close(exited) }() // its exit status says nothing: stopDockerd decides
	stop := func() error { return stopDockerd(cmd, exited, dir) }

	e := &dockerEngine{cli: cli, env: append(env, "DOCKER_HOST=unix://"+sock), own: true}
	deadline := time.Now().Add(dockerdStartTimeout)
	for {
		_, err := e.run("version", "--format", "{{.Server.Version}}")
		if err == nil {
			break
		}
		failed := "exited"
		select {
		case <-exited:
		case <-time.After(200 * time.Millisecond):
			if time.Now().Before(deadline) {
				continue
			}
			failed = fmt.Sprintf("did not answer within %v", dockerdStartTimeout)
		}
		tail := logTail(logPath, 15)
		if err := stop(); err != nil {
			t.Error(err)
		}
		t.Skipf("skipping: no Docker engine answers, and the dockerd started for this test %s (%v); its log ends:\n%s", failed, err, tail)
	}
	t.Cleanup(func() {
		if err := stop(); err != nil {
			t.Error(err)
		}
	})
	return e
}

// stopDockerd stops a dockerd started by startDockerd (SIGTERM, then
// SIGKILL after dockerdStopTimeout, with the containerd it started), undoes
// the mounts it leaves under dir, and removes dir.
func stopDockerd(cmd *exec.Cmd, exited <-chan struct{}, dir string) error {
	_ = cmd.Process.Signal(syscall.SIGTERM) // one that has exited is seen below
	select {
	case <-exited:
	case <-time.After(dockerdStopTimeout):
		_ = cmd.Process.Kill()
		<-exited
		// Its containerd outlives a killed dockerd.
		if err := killLeftBehind(filepath.Join(dir, "exec/containerd/containerd.pid"), dir); err != nil {
			return err
		}
	}
	return unmountAndRemove(dir)
}

// unmountAndRemove undoes the mounts under dir, a startDockerd folder whose
// dockerd has exited (it leaves its default network namespace mounted in
// its state folder), and removes dir.
func unmountAndRemove(dir string) error {
	mounts, err := mountsUnder(dir)
	if err != nil {
		return err
	}
	for _, m := range mounts {
		if err := syscall.Unmount(m, syscall.MNT_DETACH); err != nil {
			return fmt.Errorf("unmount %s: %w", m, err)
		}
	}
	return os.RemoveAll(dir)
}

// mountsUnder lists the mount points of this process's mount namespace
// inside dir, deepest first.
func mountsUnder(dir string) ([]string, error) {
	f, err := os.Open("/proc/self/mountinfo")
	if err != nil {
		return nil, err
	}
	defer f.Close()
	var mounts []string
	lines := bufio.NewScanner(f)
	for lines.Scan() {
		// Fields: id, parent id, major:minor, root, mount point, ...
		if fields := strings.Fields(lines.Text()); len(fields) > 4 && strings.HasPrefix(fields[4], dir+"/") {
			mounts = append(mounts, fields[4])
		}
	}
	sort.Sort(sort.Reverse(sort.StringSlice(mounts)))
	return mounts, lines.Err()
}

// logTail returns the last n lines of the file at path.
func logTail(path string, n int) string {
	b, err := os.ReadFile(path)
	if err != nil {
		return err.Error()
	}
	lines := strings.Split(strings.TrimRight(string(b), "\n"), "\n")
	return strings.Join(lines[max(0, len(lines)-n):], "\n")
}
