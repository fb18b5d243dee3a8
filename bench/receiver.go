package main

import (
	"bufio"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// maxSeq bounds the sequence numbers whose arrival time the receiver records: 4M
// int64s, 32 MiB of address space that costs RSS only for the pages a run touches.
const maxSeq = 1 << 22

// maxHang bounds how long a /hang/ request is held when the client never gives up.
const maxHang = 30 * time.Second

// receiver is the loopback webhook endpoint. It runs in a child process (see
// startReceiver) so its allocations, CPU and GC stay out of the measured process.
//
// Paths: /e/<n> answers 204 after -receiver-latency; /hang/<n> holds the request until
// the client gives up or /_ctl/release, then answers 503; /_ctl/ is the parent's control
// interface.
type receiver struct {
	latency  time.Duration
	count    atomic.Int64 // requests answered on /e/ paths since the last reset
	hung     atomic.Int64 // requests received on /hang/ paths since the last reset
	maxSeen  atomic.Int64
	arrivals []int64 // unix nanoseconds by sequence number, 0 when not (yet) arrived
	done     chan struct{}

	mu      sync.Mutex
	release chan struct{} // closed by /_ctl/release to end the current hangs
}

func (r *receiver) releaseChan() chan struct{} {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.release
}

func (r *receiver) ServeHTTP(w http.ResponseWriter, req *http.Request) {
	path := req.URL.Path
	if strings.HasPrefix(path, "/_ctl/") {
		r.control(w, req)
		return
	}
	_, _ = io.Copy(io.Discard, req.Body)
	now := time.Now().UnixNano()
	if strings.HasPrefix(path, "/hang/") {
		r.hung.Add(1)
		t := time.NewTimer(maxHang)
		defer t.Stop()
		select {
		case <-req.Context().Done():
		case <-r.done:
		case <-r.releaseChan():
		case <-t.C:
		}
		w.WriteHeader(http.StatusServiceUnavailable)
		return
	}
	if seq, ok := parseSeq(req.Header.Get("Webhook-Id")); ok && seq < int64(len(r.arrivals)) {
		atomic.StoreInt64(&r.arrivals[seq], now)
		for {
			m := r.maxSeen.Load()
			if seq <= m || r.maxSeen.CompareAndSwap(m, seq) {
				break
			}
		}
	}
	r.count.Add(1)
	if r.latency > 0 {
		t := time.NewTimer(r.latency)
		select {
		case <-t.C:
		case <-req.Context().Done():
			t.Stop()
		}
	}
	w.WriteHeader(http.StatusNoContent)
}

// parseSeq reads the sequence number at the end of an ID such as "evt_123".
func parseSeq(id string) (int64, bool) {
	i := strings.LastIndexByte(id, '_')
	if i < 0 {
		return 0, false
	}
	n, err := strconv.ParseInt(id[i+1:], 10, 64)
	return n, err == nil && n >= 0
}

func (r *receiver) control(w http.ResponseWriter, req *http.Request) {
	switch req.URL.Path {
	case "/_ctl/count":
		fmt.Fprintf(w, "%d %d", r.count.Load(), r.hung.Load())
	case "/_ctl/cpu":
		fmt.Fprintf(w, "%d", int64(processCPU()))
	case "/_ctl/reset":
		m := min(r.maxSeen.Load(), int64(len(r.arrivals)-1))
		clear(r.arrivals[:m+1])
		r.maxSeen.Store(0)
		r.count.Store(0)
		r.hung.Store(0)
	case "/_ctl/release":
		r.mu.Lock()
		close(r.release)
		r.release = make(chan struct{})
		r.mu.Unlock()
	case "/_ctl/arrivals":
		from, _ := strconv.ParseInt(req.URL.Query().Get("from"), 10, 64)
		to, _ := strconv.ParseInt(req.URL.Query().Get("to"), 10, 64)
		from, to = max(from, 0), min(to, int64(len(r.arrivals)))
		bw := bufio.NewWriterSize(w, 64<<10)
		var b [8]byte
		for i := from; i < to; i++ {
			binary.LittleEndian.PutUint64(b[:], uint64(atomic.LoadInt64(&r.arrivals[i])))
			_, _ = bw.Write(b[:])
		}
		_ = bw.Flush()
	default:
		http.NotFound(w, req)
	}
}

// runReceiverChild serves until its stdin closes, which happens when the parent exits
// for whatever reason, so a receiver is never left behind.
func runReceiverChild(latency time.Duration) error {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return err
	}
	r := &receiver{latency: latency, arrivals: make([]int64, maxSeq),
		done: make(chan struct{}), release: make(chan struct{})}
	srv := &http.Server{Handler: r, ReadHeaderTimeout: 10 * time.Second}
	fmt.Printf("ADDR %s\n", ln.Addr())
	errc := make(chan error, 1)
	go func() { errc <- srv.Serve(ln) }()
	go func() {
		_, _ = io.Copy(io.Discard, os.Stdin)
		close(r.done)
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		defer cancel()
		_ = srv.Shutdown(ctx)
	}()
	if err := <-errc; !errors.Is(err, http.ErrServerClosed) {
		return err
	}
	return nil
}

// receiverProc is the parent's handle on the child receiver.
type receiverProc struct {
	cmd   *exec.Cmd
	stdin io.WriteCloser
	base  string // http://127.0.0.1:port
	ctl   *http.Client
}

// startReceiver re-executes this program as a receiver child.
func startReceiver(latency time.Duration) (*receiverProc, error) {
	exe, err := os.Executable()
	if err != nil {
		return nil, err
	}
	cmd := exec.Command(exe, "-receiver-child", "-receiver-latency", latency.String())
	cmd.Stderr = os.Stderr
	stdin, err := cmd.StdinPipe()
	if err != nil {
		return nil, err
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		return nil, err
	}
	if err := cmd.Start(); err != nil {
		return nil, err
	}
	line, err := bufio.NewReader(stdout).ReadString('\n')
	addr, ok := strings.CutPrefix(strings.TrimSpace(line), "ADDR ")
	if err != nil || !ok {
		_ = stdin.Close()
		_ = cmd.Wait()
		return nil, fmt.Errorf("receiver child did not report its address (%q): %v", line, err)
	}
	return &receiverProc{cmd: cmd, stdin: stdin, base: "http://" + addr,
		ctl: &http.Client{Timeout: 30 * time.Second}}, nil
}

func (p *receiverProc) stop() {
	_ = p.stdin.Close()
	done := make(chan struct{})
	go func() { _ = p.cmd.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(5 * time.Second):
		_ = p.cmd.Process.Kill()
		<-done
	}
}

func (p *receiverProc) get(path string) ([]byte, error) {
	resp, err := p.ctl.Get(p.base + path)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err == nil && resp.StatusCode != http.StatusOK {
		err = fmt.Errorf("receiver %s: HTTP %d", path, resp.StatusCode)
	}
	return b, err
}

// counts returns the requests answered (on /e/ paths) and those hanging (/hang/ paths).
func (p *receiverProc) counts() (ok, hung int64, err error) {
	b, err := p.get("/_ctl/count")
	if err != nil {
		return 0, 0, err
	}
	_, err = fmt.Sscanf(string(b), "%d %d", &ok, &hung)
	return ok, hung, err
}

// cpu returns the receiver process's CPU time so far.
func (p *receiverProc) cpu() (time.Duration, error) {
	b, err := p.get("/_ctl/cpu")
	if err != nil {
		return 0, err
	}
	n, err := strconv.ParseInt(string(b), 10, 64)
	return time.Duration(n), err
}

// releaseHangs answers every request hanging now.
func (p *receiverProc) releaseHangs() error {
	_, err := p.get("/_ctl/release")
	return err
}

func (p *receiverProc) reset() error {
	_, err := p.get("/_ctl/reset")
	return err
}

// arrivals returns the arrival times of sequence numbers from to to-1.
func (p *receiverProc) arrivals(from, to int64) ([]int64, error) {
	b, err := p.get(fmt.Sprintf("/_ctl/arrivals?from=%d&to=%d", from, to))
	if err != nil {
		return nil, err
	}
	out := make([]int64, len(b)/8)
	for i := range out {
		out[i] = int64(binary.LittleEndian.Uint64(b[8*i:]))
	}
	return out, nil
}
