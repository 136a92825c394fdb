package main

import (
	"bufio"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"

	"github.com/ssehub/ssehub/config"
)

// freePort returns a loopback port nobody listened on a moment ago.
// Another process may take it before the caller's process binds it: only
// for programs that cannot listen on port 0 and tell their port, and with
// a retry when the bind fails, as startNginx does. A Main that a test
// restarts on its address takes restartAddr's.
func freePort(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return strconv.Itoa(ln.Addr().(*net.TCPAddr).Port)
}

// freePorts returns n distinct loopback ports nobody listened on a moment
// ago: each is held until all are known, so that no two are the same
// number, as two calls of freePort in a row may give.
func freePorts(t *testing.T, n int) []string {
	t.Helper()
	ports := make([]string, 0, n)
	for range n {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		defer ln.Close()
		ports = append(ports, strconv.Itoa(ln.Addr().(*net.TCPAddr).Port))
	}
	return ports
}

// refusingAddr returns a loopback host:port that refuses every connect
// until the test ends: a socket bound there that never listens, so that
// the kernel answers a connect with a reset, and no other process can
// listen there in between, as on a port freePort gave up.
func refusingAddr(t *testing.T) string {
	t.Helper()
	_, addr := boundSocket(t)
	return addr
}

// restartAddr returns a loopback host:port for a Main that a test stops
// and starts again on the same address. A socket bound there without
// listening, with SO_REUSEADDR, holds the port until the test ends: Main's
// listener (Go's set SO_REUSEADDR too) binds beside it, each time, and
// while no Main listens a connect is refused, as on a stopped ssehub, but
// the kernel gives the port to nobody who asks for a free one. A port from
// freePort was free for the taking from the moment freePort closed it, and
// again whenever the test had stopped its Main: another process given it
// kept the Main from starting again ("address already in use").
func restartAddr(t *testing.T) string {
	t.Helper()
	fd, port := bindLoopback(t)
	t.Cleanup(func() { syscall.Close(fd) })
	return fmt.Sprintf("127.0.0.1:%d", port)
}

// bindLoopback binds a new socket to a free loopback port, as a listener
// on port 0 does (SO_REUSEADDR, as Go's), and returns it and its port.
func bindLoopback(t *testing.T) (fd, port int) {
	t.Helper()
	fd, err := syscall.Socket(syscall.AF_INET, syscall.SOCK_STREAM|syscall.SOCK_CLOEXEC, 0)
	if err != nil {
		t.Fatal(err)
	}
	if err := syscall.SetsockoptInt(fd, syscall.SOL_SOCKET, syscall.SO_REUSEADDR, 1); err != nil {
		syscall.Close(fd)
		t.Fatal(err)
	}
	if err := syscall.Bind(fd, &syscall.SockaddrInet4{Addr: [4]byte{127, 0, 0, 1}}); err != nil {
		syscall.Close(fd)
		t.Fatal(err)
	}
	sa, err := syscall.Getsockname(fd)
	if err != nil {
		syscall.Close(fd)
		t.Fatal(err)
	}
	return fd, sa.(*syscall.SockaddrInet4).Port
}

// TestRestartAddrIsNobodyElses: while a Main on restartAddr's address is
// stopped, a connect is refused, and no bind to a free port, however
// many, is given that port; the Main then starts on it again.
func TestRestartAddrIsNobodyElses(t *testing.T) {
	if testTransport != "gin" {
		t.Skip("the address, not the transport: tested once, in the gin pass")
	}
	addr := restartAddr(t)
	onAddr := func(m *Main) { m.Config.Server.Addr = addr }
	base, stop := startMain(t, config.Default(), onAddr)
	if base != "http://"+addr {
		t.Fatalf("Main listens at %s, want http://%s", base, addr)
	}
	stop()
	if c, err := net.Dial("tcp", addr); err == nil || !errors.Is(err, syscall.ECONNREFUSED) {
		if c != nil {
			c.Close()
		}
		t.Fatalf("a connect while Main is stopped: %v, want it refused", err)
	}
	// A freed port was given again after tens to thousands of binds (the
	// kernel picks among the odd ports of its range, some 14,000): 250,000
	// leave it no chance to be missed.
	for i := range 1 << 18 {
		if port := freeBind(t); "127.0.0.1:"+port == addr {
			t.Fatalf("bind %d to a free port was given %s while Main was stopped", i+1, addr)
		}
	}
	if base, _ := startMain(t, config.Default(), onAddr); base != "http://"+addr {
		t.Fatalf("Main listens at %s after the restart, want http://%s", base, addr)
	}
}

// freeBind binds a socket to a free loopback port (bindLoopback), closes
// it, and returns the port.
func freeBind(t *testing.T) string {
	t.Helper()
	fd, port := bindLoopback(t)
	syscall.Close(fd)
	return strconv.Itoa(port)
}

// boundSocket returns a TCP socket bound to a free loopback port, closed
// when the test ends, and its host:port.
func boundSocket(t *testing.T) (fd int, addr string) {
	t.Helper()
	fd, err := syscall.Socket(syscall.AF_INET, syscall.SOCK_STREAM, 0)
	if err != nil {
		t.Fatal(err)
	}
	syscall.CloseOnExec(fd)
	t.Cleanup(func() { syscall.Close(fd) })
	if err := syscall.Bind(fd, &syscall.SockaddrInet4{Addr: [4]byte{127, 0, 0, 1}}); err != nil {
		t.Fatal(err)
	}
	sa, err := syscall.Getsockname(fd)
	if err != nil {
		t.Fatal(err)
	}
	return fd, fmt.Sprintf("127.0.0.1:%d", sa.(*syscall.SockaddrInet4).Port)
}

// errPortTaken is the error of a start that failed because another
// process took the port from freePort before the started one bound it.
var errPortTaken = errors.New("the port was taken before the process bound it")

// listensOn reports whether the process pid holds the TCP socket that
// listens on addr (an IPv4 ip:port): not merely whether addr accepts
// connections, which another process's socket could do. It reads
// /proc/net/tcp for the listening socket's inode and the process's
// /proc/PID/fd for a link to that socket.
func listensOn(pid int, addr string) (bool, error) {
	want, err := netip.ParseAddrPort(addr)
	if err != nil || !want.Addr().Is4() {
		return false, fmt.Errorf("listensOn: want an IPv4 ip:port, got %q", addr)
	}
	inode, err := listeningInode(want)
	if err != nil || inode == "" {
		return false, err
	}
	fds, err := os.ReadDir(fmt.Sprintf("/proc/%d/fd", pid))
	if errors.Is(err, fs.ErrNotExist) {
		return false, nil // it has exited
	}
	if err != nil {
		return false, err
	}
	for _, fd := range fds {
		// A descriptor closed since the listing is no longer there.
		if link, err := os.Readlink(filepath.Join(fmt.Sprintf("/proc/%d/fd", pid), fd.Name())); err == nil && link == "socket:["+inode+"]" {
			return true, nil
		}
	}
	return false, nil
}

// listeningInode returns the inode of the TCP socket listening on addr, or
// "" when none does.
func listeningInode(addr netip.AddrPort) (string, error) {
	f, err := os.Open("/proc/net/tcp")
	if err != nil {
		return "", err
	}
	defer f.Close()
	const listen = "0A" // TCP_LISTEN
	lines := bufio.NewScanner(f)
	lines.Scan() // the header
	for lines.Scan() {
		// Fields: sl, local_address, rem_address, st, tx:rx queue,
		// tr:tm->when, retrnsmt, uid, timeout, inode, ...
		fields := strings.Fields(lines.Text())
		if len(fields) < 10 || fields[3] != listen {
			continue
		}
		local, err := parseProcNetAddr(fields[1])
		if err != nil {
			return "", err
		}
		if local == addr {
			return fields[9], nil
		}
	}
	return "", lines.Err()
}

// parseProcNetAddr parses /proc/net/tcp's IPv4 address form: the
// address as a 32-bit word in the host's byte order, then the port, both
// in hex.
func parseProcNetAddr(s string) (netip.AddrPort, error) {
	ipHex, portHex, ok := strings.Cut(s, ":")
	word, err := hex.DecodeString(ipHex)
	if !ok || err != nil || len(word) != 4 {
		return netip.AddrPort{}, fmt.Errorf("/proc/net/tcp: address %q", s)
	}
	port, err := strconv.ParseUint(portHex, 16, 16)
	if err != nil {
		return netip.AddrPort{}, fmt.Errorf("/proc/net/tcp: address %q: %w", s, err)
	}
	var ip [4]byte
	binary.NativeEndian.PutUint32(ip[:], binary.BigEndian.Uint32(word))
	return netip.AddrPortFrom(netip.AddrFrom4(ip), uint16(port)), nil
}

func TestListensOn(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	if ok, err := listensOn(os.Getpid(), addr); !ok || err != nil {
		t.Errorf("listensOn(this process, %s) = %v, %v while it listens there", addr, ok, err)
	}
	// A child holds none of this process's descriptors (Go opens them
	// close-on-exec).
	child := exec.Command("sleep", "60")
	if err := child.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() { _ = child.Process.Kill(); _ = child.Wait() }()
	if ok, err := listensOn(child.Process.Pid, addr); ok || err != nil {
		t.Errorf("listensOn(a child process, %s) = %v, %v: want false, the socket is this process's", addr, ok, err)
	}
	ln.Close()
	if ok, err := listensOn(os.Getpid(), addr); ok || err != nil {
		t.Errorf("listensOn(this process, %s) = %v, %v once it has closed the listener", addr, ok, err)
	}
}
