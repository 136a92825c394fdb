// Command restartstorm reproduces the reconnect storm after a restart of
// a NATS-backed ssehub: one instance on an embedded NATS server, clients
// subscribers of one topic while events are published at rate, then
// SIGTERM and a restart on the same store, and every client reconnects at
// once with its Last-Event-ID, as EventSources with one retry: do. It
// prints the statuses of the reconnects (-1: no answer within 3 s). A
// native EventSource stops for good on a 503.
//
//	go build -o bin/ssehub ./cmd/ssehub
//	go run ./bench/restartstorm -bin bin/ssehub
package main

import (
	"bufio"
	"flag"
	"fmt"
	"log"
	"net/http"
	"os"
	"os/exec"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"
)

const token = "restartstorm-token"

func main() {
	bin := flag.String("bin", "bin/ssehub", "the ssehub binary")
	addr := flag.String("addr", "127.0.0.1:28311", "the address ssehub listens on")
	clients := flag.Int("clients", 2000, "subscribers")
	rate := flag.Int("rate", 200, "publishes per second")
	before := flag.Duration("before", 5*time.Second, "how long events are published before the restart")
	flag.Parse()
	store, err := os.MkdirTemp("", "restartstorm")
	if err != nil {
		log.Fatal(err)
	}
	defer os.RemoveAll(store)
	base := "http://" + *addr

	cmd := start(*bin, *addr, store)
	var published atomic.Int64
	stop := make(chan struct{})
	go publish(base, *rate, &published, stop)
	last := make([]string, *clients)
	var wg sync.WaitGroup
	var open atomic.Int64
	for i := range last {
		wg.Go(func() { follow(base, &last[i], &open) })
	}
	time.Sleep(*before)
	fmt.Printf("subscribed %d; published %d\n", open.Load(), published.Load())
	stopProcess(cmd)
	wg.Wait()
	began := time.Now()
	cmd = start(*bin, *addr, store)
	fmt.Printf("restarted, ready in %v\n", time.Since(began).Round(time.Millisecond))

	var mu sync.Mutex
	statuses := map[int]int{}
	for i := range last {
		wg.Go(func() {
			status := reconnect(base, last[i])
			mu.Lock()
			statuses[status]++
			mu.Unlock()
		})
	}
	wg.Wait()
	close(stop)
	fmt.Printf("reconnect statuses %v; published %d\n", statuses, published.Load())
	stopProcess(cmd)
}

// start runs ssehub on an embedded NATS storing in store, and waits for
// it to be ready.
func start(bin, addr, store string) *exec.Cmd {
	cmd := exec.Command(bin, "--config", os.DevNull, "--addr", addr)
	cmd.Env = append(os.Environ(), "SSEHUB_HUB_BROKER=nats", "SSEHUB_NATS_EMBEDDED=true", "SSEHUB_NATS_STORE_DIR="+store,
		"SSEHUB_AUTH_PUBLISH_TOKENS="+token, "SSEHUB_DEMO_ENABLED=false")
	cmd.Stdout, cmd.Stderr = os.Stderr, os.Stderr
	if err := cmd.Start(); err != nil {
		log.Fatal(err)
	}
	for range 300 {
		if r, err := http.Get("http://" + addr + "/readyz"); err == nil {
			r.Body.Close()
			if r.StatusCode == http.StatusOK {
				return cmd
			}
		}
		time.Sleep(20 * time.Millisecond)
	}
	log.Fatal("ssehub not ready")
	return nil
}

func stopProcess(cmd *exec.Cmd) {
	if err := cmd.Process.Signal(syscall.SIGTERM); err != nil {
		log.Fatal(err)
	}
	_ = cmd.Wait() // its exit status: what matters is that it is gone
}

// publish publishes rate events a second until stop is closed, counting
// those answered 201.
func publish(base string, rate int, published *atomic.Int64, stop <-chan struct{}) {
	tick := time.NewTicker(time.Second / time.Duration(rate))
	defer tick.Stop()
	body := `{"data": "` + strings.Repeat("x", 200) + `"}`
	for {
		select {
		case <-stop:
			return
		case <-tick.C:
		}
		go func() {
			req, _ := http.NewRequest("POST", base+"/api/v1/topics/t/events", strings.NewReader(body))
			req.Header.Set("Authorization", "Bearer "+token)
			req.Header.Set("Content-Type", "application/json")
			if r, err := http.DefaultClient.Do(req); err == nil {
				r.Body.Close()
				if r.StatusCode == http.StatusCreated {
					published.Add(1)
				}
			}
		}()
	}
}

// follow subscribes and keeps the last id received in last until the
// stream ends.
func follow(base string, last *string, open *atomic.Int64) {
	r, err := http.Get(base + "/api/v1/events?topic=t")
	if err != nil || r.StatusCode != http.StatusOK {
		log.Printf("subscribe: %v", err)
		return
	}
	defer r.Body.Close()
	open.Add(1)
	sc := bufio.NewScanner(r.Body)
	for sc.Scan() {
		if id, ok := strings.CutPrefix(sc.Text(), "id: "); ok {
			*last = id
		}
	}
}

// reconnect subscribes again after lastID and returns the status, or -1
// for no answer within 3 s.
func reconnect(base, lastID string) int {
	req, _ := http.NewRequest("GET", base+"/api/v1/events?topic=t", nil)
	if lastID != "" {
		req.Header.Set("Last-Event-ID", lastID)
	}
	r, err := (&http.Client{Timeout: 3 * time.Second}).Do(req)
	if err != nil {
		return -1
	}
	r.Body.Close()
	return r.StatusCode
}
