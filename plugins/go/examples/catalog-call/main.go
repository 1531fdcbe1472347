// Command catalog-call resolves the catalog service through etcd and calls it with the
// Thrift client code generated from idl/catalog.thrift, then prints a JSON summary: how many
// calls each address served, how many failed, and how many connections were refused (and so
// retried on another instance). With -watch it instead prints the set of addresses each time
// it changes, as a JSON array on a line, until its standard input closes.
//
// Generate the client code first (gen-go/ is not committed):
//
//	soa gen go --idl ../../../../idl/catalog.thrift --out gen-go --module soa-example/catalog-call/gen-go
//	rm gen-go/go.mod
//	go run . -etcd 127.0.0.1:2379 -prefix /soa -calls 20
package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/soa-shop/soa/plugins/go/soa"

	"soa-example/catalog-call/gen-go/shop/catalog"
)

type summary struct {
	Calls    int            `json:"calls"`
	Failed   int            `json:"failed"`
	Served   map[string]int `json:"served"`
	Refused  int64          `json:"refused"`
	Products int            `json:"products"`
	Errors   []string       `json:"errors"`
}

func main() {
	etcd := flag.String("etcd", "127.0.0.1:2379", "etcd endpoints, comma separated")
	prefix := flag.String("prefix", "/soa", "registry key prefix")
	calls := flag.Int("calls", 20, "ping calls to make")
	watch := flag.Bool("watch", false, "print the instance set on every change until stdin closes")
	flag.Parse()

	ctx := context.Background()
	reg, err := soa.NewRegistry(soa.RegistryConfig{Endpoints: strings.Split(*etcd, ","), Prefix: *prefix})
	if err != nil {
		fmt.Fprintln(os.Stderr, "registry:", err)
		os.Exit(1)
	}
	defer reg.Close()
	if *watch {
		if err := watchSet(ctx, reg); err != nil {
			fmt.Fprintln(os.Stderr, "resolve:", err)
			os.Exit(1)
		}
		return
	}
	var refused atomic.Int64
	var mu sync.Mutex
	out := summary{Served: map[string]int{}, Errors: []string{}}
	client, err := soa.Dial(ctx, reg, catalog.SoaService, soa.ClientOptions{
		IDLHash:        catalog.SoaIDLHash,
		Idempotent:     []string{"ping", "list_products"},
		ConnectTimeout: 500 * time.Millisecond,
		CallTimeout:    5 * time.Second,
		OnAttempt: func(a soa.Attempt) {
			var te *soa.TransportError
			if errors.As(a.Err, &te) && !te.Sent {
				refused.Add(1)
			} else if a.Err == nil && a.Method == "ping" {
				mu.Lock()
				out.Served[a.Instance.Address()]++
				mu.Unlock()
			}
		},
	})
	if err != nil {
		fmt.Fprintln(os.Stderr, "resolve:", err)
		os.Exit(1)
	}
	defer client.Close()

	shop := catalog.NewCatalogServiceClient(client)
	for i := 0; i < *calls; i++ {
		pong, err := shop.Ping(ctx)
		out.Calls++
		if err != nil || pong != "pong" {
			out.Failed++
			out.Errors = append(out.Errors, fmt.Sprintf("ping: %q %v", pong, err))
		}
	}
	products, err := shop.ListProducts(ctx, 0, 100)
	out.Products = len(products)
	if err != nil {
		out.Failed++
		out.Errors = append(out.Errors, fmt.Sprintf("list_products: %v", err))
	}
	out.Refused = refused.Load()
	_ = json.NewEncoder(os.Stdout).Encode(out)
}

// watchSet prints catalog's addresses as a JSON array whenever they change, until stdin closes.
func watchSet(ctx context.Context, reg *soa.Registry) error {
	res, err := reg.Resolve(ctx, "catalog")
	if err != nil {
		return err
	}
	defer res.Close()
	stdinClosed := make(chan struct{})
	go func() {
		_, _ = io.Copy(io.Discard, os.Stdin)
		close(stdinClosed)
	}()
	printed := "-"
	for {
		changed := res.Changed()
		addrs := []string{}
		for _, in := range res.Instances() {
			addrs = append(addrs, in.Address())
		}
		if line, _ := json.Marshal(addrs); string(line) != printed {
			printed = string(line)
			fmt.Println(printed)
		}
		select {
		case <-changed:
		case <-stdinClosed:
			return nil
		}
	}
}
