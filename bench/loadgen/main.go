// Command loadgen sends one request over and over from many keep-alive
// connections and reports the rate, the latency percentiles and every
// non-2xx answer. It is the separate-process load generator of the bench
// harness (see bench/README.md); it trusts the server certificate given with
// -cacert, or none at all with -insecure (loopback benchmarks only).
package main

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/http"
	"os"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

type headers []string

func (h *headers) String() string     { return strings.Join(*h, ", ") }
func (h *headers) Set(v string) error { *h = append(*h, v); return nil }

func main() {
	var (
		url      = flag.String("url", "", "the URL to GET")
		conns    = flag.Int("c", 32, "concurrent connections")
		duration = flag.Duration("d", 10*time.Second, "how long to send")
		warmup   = flag.Duration("warmup", 2*time.Second, "how long to send before measuring")
		cacert   = flag.String("cacert", "", "PEM file of the server certificate or its CA")
		insecure = flag.Bool("insecure", false, "skip certificate verification (loopback only)")
		hdrs     headers
	)
	flag.Var(&hdrs, "H", "a request header 'Name: value' (repeatable)")
	flag.Parse()
	if err := run(*url, *conns, *duration, *warmup, *cacert, *insecure, hdrs); err != nil {
		fmt.Fprintln(os.Stderr, "loadgen:", err)
		os.Exit(1)
	}
}

func run(url string, conns int, duration, warmup time.Duration, cacert string, insecure bool, hdrs headers) error {
	if url == "" {
		return errors.New("-url is required")
	}
	tlsConf := &tls.Config{MinVersion: tls.VersionTLS12, InsecureSkipVerify: insecure} // -insecure: loopback benchmarks only
	if cacert != "" {
		pem, err := os.ReadFile(cacert)
		if err != nil {
			return err
		}
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(pem) {
			return fmt.Errorf("%s: no certificate", cacert)
		}
		tlsConf.RootCAs = pool
	}
	tr := &http.Transport{TLSClientConfig: tlsConf, MaxIdleConnsPerHost: conns, MaxConnsPerHost: conns, ForceAttemptHTTP2: false}
	client := &http.Client{Transport: tr, Timeout: 30 * time.Second}
	req, err := http.NewRequest(http.MethodGet, url, nil)
	if err != nil {
		return err
	}
	for _, h := range hdrs {
		name, value, ok := strings.Cut(h, ":")
		if !ok {
			return fmt.Errorf("header %q: want 'Name: value'", h)
		}
		req.Header.Set(strings.TrimSpace(name), strings.TrimSpace(value))
	}

	var (
		measuring atomic.Bool
		mu        sync.Mutex
		latencies []time.Duration
		statuses  = map[string]int{}
	)
	ctx, cancel := context.WithTimeout(context.Background(), warmup+duration)
	defer cancel()
	go func() {
		time.Sleep(warmup)
		measuring.Store(true)
	}()
	var wg sync.WaitGroup
	start := make(chan struct{})
	for range conns {
		wg.Go(func() {
			<-start
			var mine []time.Duration
			mineStatus := map[string]int{}
			for ctx.Err() == nil {
				t := time.Now()
				resp, err := client.Do(req.WithContext(ctx))
				status := ""
				if err != nil {
					if ctx.Err() != nil {
						break
					}
					status = "error: " + err.Error()
				} else {
					_, _ = io.Copy(io.Discard, resp.Body)
					_ = resp.Body.Close()
					status = resp.Status
				}
				if measuring.Load() {
					mine = append(mine, time.Since(t))
					mineStatus[status]++
				}
			}
			mu.Lock()
			latencies = append(latencies, mine...)
			for k, v := range mineStatus {
				statuses[k] += v
			}
			mu.Unlock()
		})
	}
	close(start)
	wg.Wait()
	if len(latencies) == 0 {
		return errors.New("no request completed")
	}
	slices.Sort(latencies)
	pct := func(p float64) time.Duration { return latencies[int(p*float64(len(latencies)-1))] }
	fmt.Printf("requests: %d in %v over %d connections\n", len(latencies), duration, conns)
	fmt.Printf("rate: %.0f requests/s\n", float64(len(latencies))/duration.Seconds())
	fmt.Printf("latency: p50 %v  p90 %v  p99 %v  max %v\n", pct(0.5), pct(0.9), pct(0.99), latencies[len(latencies)-1])
	keys := make([]string, 0, len(statuses))
	for k := range statuses {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	for _, k := range keys {
		fmt.Printf("status %s: %d\n", k, statuses[k])
	}
	for k := range statuses {
		if !strings.HasPrefix(k, "2") {
			return errors.New("some requests failed")
		}
	}
	return nil
}
