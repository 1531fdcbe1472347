// Command livecheck drives the Go plugin against real soa servers of tests/fixtures'
// EchoService, for tests/test_plugin_go.py and bench/plugin_go_bench.py. Each mode prints JSON.
//
//	spread  -calls N -concurrency C -balancer B [-keys K]: who served each whoami call
//	load    -concurrency C: whoami calls until stdin closes; a line per instance first seen
//	late    -tries N: bump calls with 1 ms left; how the server answered, and whether it ran them
//	bench   -addr A | -etcd E, -concurrency C -duration D: calls/s and p99 of echo calls
//	compare -addr A -etcd E, -concurrency C -duration D -rounds R -slices S: bench's figures
//	        for the raw client, the raw client over THeader and the plugin, per round, in this
//	        one process; within a round they take S turns of D/S each
package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"log"
	"os"
	"runtime/pprof"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/soa-shop/soa/plugins/go/internal/gen/client_echo"
	"github.com/soa-shop/soa/plugins/go/soa"
)

type flags struct {
	mode, etcd, prefix, service, balancer, idlHash, idlMismatch, addr    string
	idempotent, tlsCA, tlsCert, tlsKey                                   string
	calls, concurrency, keys, tries, maxConns, rounds, slices, serverPID int
	duration                                                             time.Duration
	rawTHeader                                                           bool
}

func main() {
	var f flags
	flag.StringVar(&f.mode, "mode", "spread", "spread, load, late or bench")
	flag.StringVar(&f.etcd, "etcd", "127.0.0.1:2379", "etcd endpoints, comma separated")
	flag.StringVar(&f.prefix, "prefix", "/soa", "registry key prefix")
	flag.StringVar(&f.service, "service", client_echo.SoaService, "soa service name")
	flag.StringVar(&f.balancer, "balancer", soa.RoundRobin, "balancer")
	flag.StringVar(&f.idlHash, "idl-hash", client_echo.SoaIDLHash, "this client's idl_hash")
	flag.StringVar(&f.idlMismatch, "idl-mismatch", soa.IDLWarn, "warn or exclude")
	flag.StringVar(&f.idempotent, "idempotent", "ping,echo,whoami,slow", "methods marked idempotent")
	flag.StringVar(&f.tlsCA, "tls-ca", "", "CA of TLS instances")
	flag.StringVar(&f.tlsCert, "tls-cert", "", "client certificate for TLS instances")
	flag.StringVar(&f.tlsKey, "tls-key", "", "its key")
	flag.StringVar(&f.addr, "addr", "", "bench: the raw Apache client's address (no plugin)")
	flag.IntVar(&f.calls, "calls", 30, "spread: calls to make")
	flag.IntVar(&f.concurrency, "concurrency", 1, "goroutines")
	flag.IntVar(&f.keys, "keys", 0, "spread: route by hash keys user-0..user-K-1")
	flag.IntVar(&f.tries, "tries", 20, "late: calls with 1 ms left")
	flag.IntVar(&f.maxConns, "max-conns", 0, "connections per instance (0: max(4, concurrency); bench: the plugin's default)")
	flag.BoolVar(&f.rawTHeader, "raw-theader", false, "bench -addr: the raw client speaks THeader (no info headers)")
	flag.DurationVar(&f.duration, "duration", 2*time.Second, "bench: how long each run lasts")
	flag.IntVar(&f.rounds, "rounds", 5, "compare: rounds of the three")
	flag.IntVar(&f.slices, "slices", 6, "compare: turns of the three within a round")
	flag.IntVar(&f.serverPID, "server-pid", 0, "bench, compare: also report this process's CPU time per call")
	cpuProfile := flag.String("cpuprofile", "", "write a CPU profile (runtime/pprof) to this file")
	flag.Parse()
	log.SetOutput(os.Stderr)
	if *cpuProfile != "" {
		out, err := os.Create(*cpuProfile)
		if err != nil {
			fail(err)
		}
		if err := pprof.StartCPUProfile(out); err != nil {
			fail(err)
		}
		defer pprof.StopCPUProfile()
	}
	if f.mode == "bench" && f.addr != "" {
		call, done := rawCaller(f.addr, f.rawTHeader)
		defer done()
		emit(bench(context.Background(), call, f))
		return
	}
	ctx := context.Background()
	reg, err := soa.NewRegistry(soa.RegistryConfig{Endpoints: strings.Split(f.etcd, ","), Prefix: f.prefix})
	if err != nil {
		fail(err)
	}
	defer reg.Close()
	opts := soa.ClientOptions{Balancer: f.balancer, IDLHash: f.idlHash, IDLMismatch: f.idlMismatch,
		Idempotent: strings.Split(f.idempotent, ","), CallTimeout: 2 * time.Second,
		MaxConnsPerInstance: f.maxConns}
	if f.maxConns == 0 && f.mode != "bench" {
		opts.MaxConnsPerInstance = max(4, f.concurrency)
	}
	if f.tlsCA != "" || f.tlsCert != "" {
		opts.TLS = &soa.TLSFiles{CA: f.tlsCA, Cert: f.tlsCert, Key: f.tlsKey}
	}
	var reused, dialled atomic.Int64
	if f.mode == "spread" { // the benches measure the client as it is used, with no hook
		opts.OnAttempt = func(a soa.Attempt) {
			if a.Reused {
				reused.Add(1)
			} else if a.Err == nil {
				dialled.Add(1)
			}
		}
	}
	client, err := soa.Dial(ctx, reg, f.service, opts)
	if err != nil {
		fail(err)
	}
	defer client.Close()
	echo := client_echo.NewEchoServiceClient(client)
	switch f.mode {
	case "spread":
		out := spread(ctx, echo, f)
		out["reused"], out["dialled"] = reused.Load(), dialled.Load()
		out["instances"] = len(client.Instances())
		emit(out)
	case "load":
		emit(load(ctx, echo, f))
	case "late":
		emit(late(ctx, echo, f))
	case "bench":
		emit(bench(ctx, func(ctx context.Context) error {
			_, err := echo.Echo(ctx, "hello")
			return err
		}, f))
	case "compare":
		raw, doneRaw := rawCaller(f.addr, false)
		defer doneRaw()
		header, doneHeader := rawCaller(f.addr, true)
		defer doneHeader()
		emit(compare(ctx, f, map[string]func(context.Context) error{
			"raw": raw, "raw_theader": header,
			"plugin": func(ctx context.Context) error {
				_, err := echo.Echo(ctx, "hello")
				return err
			},
		}))
	default:
		fail(fmt.Errorf("unknown mode %q", f.mode))
	}
}

func emit(v any) {
	if err := json.NewEncoder(os.Stdout).Encode(v); err != nil {
		fail(err)
	}
}

func fail(err error) {
	fmt.Fprintln(os.Stderr, "error:", err)
	os.Exit(1)
}

// spread makes f.calls whoami calls over f.concurrency goroutines and counts the serving ports.
func spread(ctx context.Context, echo *client_echo.EchoServiceClient, f flags) map[string]any {
	var mu sync.Mutex
	served, keys, errs := map[string]int{}, map[string]int32{}, []string{}
	var next atomic.Int64
	var wg sync.WaitGroup
	for range f.concurrency {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := next.Add(1) - 1; i < int64(f.calls); i = next.Add(1) - 1 {
				cctx, key := ctx, ""
				if f.keys > 0 {
					key = "user-" + strconv.FormatInt(i%int64(f.keys), 10)
					cctx = soa.WithHashKey(ctx, key)
				}
				port, err := echo.Whoami(cctx)
				mu.Lock()
				if err != nil {
					errs = append(errs, err.Error())
				} else {
					served[strconv.Itoa(int(port))]++
					if key != "" {
						if prev, seen := keys[key]; seen && prev != port {
							errs = append(errs, fmt.Sprintf("key %s moved from %d to %d", key, prev, port))
						}
						keys[key] = port
					}
				}
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	return map[string]any{"served": served, "failed": len(errs), "errors": errs, "keys": keys}
}

// load calls whoami from f.concurrency goroutines until stdin closes. It prints
// {"event":"new","port":P,"at_ms":T} the first time a port serves a call, then a summary.
func load(ctx context.Context, echo *client_echo.EchoServiceClient, f flags) map[string]any {
	stop := make(chan struct{})
	go func() {
		_, _ = io.Copy(io.Discard, os.Stdin)
		close(stop)
	}()
	var mu sync.Mutex
	served, errs := map[string]int{}, []string{}
	calls := 0
	var wg sync.WaitGroup
	for range f.concurrency {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				select {
				case <-stop:
					return
				default:
				}
				port, err := echo.Whoami(ctx)
				mu.Lock()
				calls++
				if err != nil {
					errs = append(errs, time.Now().Format("15:04:05.000 ")+err.Error())
				} else {
					p := strconv.Itoa(int(port))
					if served[p] == 0 {
						emit(map[string]any{"event": "new", "port": port, "at_ms": time.Now().UnixMilli()})
					}
					served[p]++
				}
				mu.Unlock()
			}
		}()
	}
	emit(map[string]any{"event": "started"})
	wg.Wait()
	if len(errs) > 20 {
		errs = errs[:20]
	}
	return map[string]any{"event": "summary", "calls": calls, "served": served, "failed": len(errs), "errors": errs}
}

// late warms a connection up, then makes f.tries bump calls with 1 ms left, then one with time
// enough: its count says how many of the late ones the handler ran.
func late(ctx context.Context, echo *client_echo.EchoServiceClient, f flags) map[string]any {
	if err := echo.Ping(ctx); err != nil {
		fail(err)
	}
	key := fmt.Sprintf("late-%d", time.Now().UnixNano())
	out := map[string]any{}
	refused, deadline, succeeded := 0, 0, 0
	other := []string{}
	for range f.tries {
		cctx, cancel := context.WithTimeout(ctx, 1500*time.Microsecond)
		_, err := echo.Bump(cctx, key)
		cancel()
		var de *soa.DeadlineError
		switch {
		case err == nil:
			succeeded++
		case errors.As(err, &de) && de.Refused:
			refused++
		case errors.Is(err, context.DeadlineExceeded):
			deadline++
		default:
			other = append(other, err.Error())
		}
	}
	after, err := echo.Bump(ctx, key)
	if err != nil {
		fail(err)
	}
	dctx, cancel := context.WithTimeout(ctx, 2*time.Second)
	defer cancel()
	if out["deadline_ms"], err = echo.DeadlineMs(dctx); err != nil {
		fail(err)
	}
	out["refused"], out["deadline"], out["succeeded"], out["other"] = refused, deadline, succeeded, other
	out["after"] = after
	return out
}

// bench runs call from f.concurrency goroutines for f.duration and reports calls/s and p99.
func bench(ctx context.Context, call func(context.Context) error, f flags) map[string]any {
	var s sample
	s.run(ctx, call, f.concurrency, f.duration, f.serverPID)
	return s.report(f.concurrency, f.serverPID != 0)
}

// compare measures each of calls f.rounds times. A round is f.slices turns of the cases, each
// turn f.duration/f.slices long and in an order that rotates, merged per case: the cases meet
// the same moments of a noisy machine. It returns each case's rounds, as bench reports them.
func compare(ctx context.Context, f flags, calls map[string]func(context.Context) error) map[string]any {
	names := make([]string, 0, len(calls))
	for name := range calls {
		names = append(names, name)
	}
	sort.Strings(names)
	out := map[string]any{}
	rounds := map[string][]map[string]any{}
	slice := f.duration / time.Duration(max(1, f.slices))
	for range f.rounds {
		samples := make([]sample, len(names))
		for turn := range max(1, f.slices) {
			for j := range names { // the order rotates every turn, as in bench/harness.py
				i := (turn + j) % len(names)
				samples[i].run(ctx, calls[names[i]], f.concurrency, slice, f.serverPID)
			}
		}
		for i, name := range names {
			rounds[name] = append(rounds[name], samples[i].report(f.concurrency, f.serverPID != 0))
		}
	}
	for name, r := range rounds {
		out[name] = r
	}
	return out
}

// sample accumulates the latencies, failures, time and CPU of one or more runs of a call.
type sample struct {
	lat                  []time.Duration
	failed               int
	elapsed              time.Duration
	serverCPU, clientCPU float64
}

// run calls from concurrency goroutines for duration (after a short warm-up) and adds to s.
func (s *sample) run(ctx context.Context, call func(context.Context) error, concurrency int, duration time.Duration, serverPID int) {
	for range 50 { // warm-up: connections, caches
		if err := call(ctx); err != nil {
			fail(err)
		}
	}
	var mu sync.Mutex
	var wg sync.WaitGroup
	cpu0, self0 := cpuSeconds(serverPID), selfCPU()
	started := time.Now()
	end := started.Add(duration)
	for range concurrency {
		wg.Add(1)
		go func() {
			defer wg.Done()
			mine := make([]time.Duration, 0, 4096)
			bad := 0
			for time.Now().Before(end) {
				t0 := time.Now()
				if err := call(ctx); err != nil {
					bad++
				}
				mine = append(mine, time.Since(t0))
			}
			mu.Lock()
			s.lat = append(s.lat, mine...)
			s.failed += bad
			mu.Unlock()
		}()
	}
	wg.Wait()
	s.elapsed += time.Since(started)
	s.serverCPU += cpuSeconds(serverPID) - cpu0
	s.clientCPU += selfCPU() - self0
}

func (s *sample) report(concurrency int, withServer bool) map[string]any {
	lat := s.lat
	sort.Slice(lat, func(i, j int) bool { return lat[i] < lat[j] })
	pct := func(q float64) float64 {
		if len(lat) == 0 {
			return 0
		}
		return float64(lat[min(len(lat)-1, int(float64(len(lat))*q))].Microseconds()) / 1000
	}
	out := map[string]any{"calls": len(lat), "failed": s.failed, "seconds": s.elapsed.Seconds(),
		"calls_per_s": float64(len(lat)) / s.elapsed.Seconds(), "p50_ms": pct(0.5), "p99_ms": pct(0.99),
		"concurrency": concurrency}
	if len(lat) > 0 {
		out["client_cpu_us"] = s.clientCPU * 1e6 / float64(len(lat))
		if withServer {
			out["server_cpu_us"] = s.serverCPU * 1e6 / float64(len(lat))
		}
	}
	return out
}

// selfCPU is the user and system CPU time this process has used.
func selfCPU() float64 {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		fail(err)
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano()).Seconds()
}

// cpuSeconds is the user and system CPU time process pid has used (Linux /proc), or 0 for pid 0.
func cpuSeconds(pid int) float64 {
	if pid == 0 {
		return 0
	}
	data, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		fail(err)
	}
	fields := strings.Fields(string(data[strings.LastIndexByte(string(data), ')')+1:]))
	user, _ := strconv.ParseFloat(fields[11], 64)
	system, _ := strconv.ParseFloat(fields[12], 64)
	return (user + system) / 100 // USER_HZ
}
