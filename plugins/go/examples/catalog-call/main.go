// Command catalog-call resolves the catalog service through etcd and calls it with the
// Thrift client code generated from idl/catalog.thrift, then prints a JSON summary: how many
// calls each address served, how many failed, and how many connections were refused (and so
// retried on another instance). With -watch it instead prints the set of addresses each time
// it changes, as a JSON array on a line, until its standard input closes.
//
// Generate the client code first (gen-go/ is not committed):
//
//	mkdir -p gen-go
//	thrift -r --gen go:package_prefix=soa-example/catalog-call/gen-go/,skip_remote -out gen-go ../../../../idl/catalog.thrift
//	go run . -etcd 127.0.0.1:2379 -prefix /soa -calls 20
package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"os"
	"strings"
	"sync/atomic"
	"time"

	"github.com/apache/thrift/lib/go/thrift"
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
	reg := soa.NewRegistry(soa.RegistryConfig{Endpoints: strings.Split(*etcd, ","), Prefix: *prefix})
	if *watch {
		if err := watchSet(ctx, reg); err != nil {
			fmt.Fprintln(os.Stderr, "resolve:", err)
			os.Exit(1)
		}
		return
	}
	var refused atomic.Int64
	client, err := soa.Dial(ctx, reg, "catalog", soa.ClientOptions{
		ConnectTimeout: 500 * time.Millisecond,
		CallTimeout:    5 * time.Second,
		OnConnectError: func(soa.Instance, error) { refused.Add(1) },
	})
	if err != nil {
		fmt.Fprintln(os.Stderr, "resolve:", err)
		os.Exit(1)
	}
	defer client.Close()

	out := summary{Served: map[string]int{}, Errors: []string{}}
	for i := 0; i < *calls; i++ {
		var pong string
		err := client.Call(ctx, func(ctx context.Context, c thrift.TClient) (err error) {
			pong, err = catalog.NewCatalogServiceClient(c).Ping(ctx)
			return err
		})
		out.Calls++
		if err != nil || pong != "pong" {
			out.Failed++
			out.Errors = append(out.Errors, fmt.Sprintf("ping: %q %v", pong, err))
			continue
		}
		last, _ := client.LastInstance()
		out.Served[last.Address()]++
	}
	err = client.Call(ctx, func(ctx context.Context, c thrift.TClient) error {
		products, err := catalog.NewCatalogServiceClient(c).ListProducts(ctx, 0, 100)
		out.Products = len(products)
		return err
	})
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
