package soa

import (
	"context"
	"log"
	"os"
	"testing"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
)

func etcdForTest(t *testing.T) *clientv3.Client {
	endpoint := os.Getenv("SOA_TEST_ETCD")
	if endpoint == "" {
		t.Fatal("SOA_TEST_ETCD is not set: run through tests/test_plugin_go.py, or point it at a live etcd")
	}
	cli, err := clientv3.New(clientv3.Config{Endpoints: []string{endpoint}, DialTimeout: 2 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cli.Close() })
	return cli
}

func TestResolverListsAgainAfterCompaction(t *testing.T) {
	cli := etcdForTest(t)
	ctx := context.Background()
	prefix := "/soa-go-test/compact-" + time.Now().Format("150405.000000")
	key := ServicePrefix(prefix, "echo") + "127.0.0.1:1"
	value := `{"service":"echo","host":"127.0.0.1","port":1}`
	if _, err := cli.Put(ctx, key, value); err != nil {
		t.Fatal(err)
	}
	resp, err := cli.Put(ctx, key, `{"service":"echo","host":"127.0.0.1","port":1,"weight":7}`)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := cli.Compact(ctx, resp.Header.Revision); err != nil {
		t.Fatal(err)
	}
	reg, err := NewRegistry(RegistryConfig{Endpoints: []string{os.Getenv("SOA_TEST_ETCD")}, Prefix: prefix,
		Logger: log.New(os.Stderr, "", 0)})
	if err != nil {
		t.Fatal(err)
	}
	defer reg.Close()
	// A resolver whose last known revision (1) is long compacted: its watch fails at once.
	res := &Resolver{service: "echo", mirror: newMirror(prefix, reg.logger), done: make(chan struct{})}
	res.publish()
	wctx, cancel := context.WithCancel(context.Background())
	res.cancel = cancel
	go res.run(wctx, reg, ServicePrefix(prefix, "echo"), 1)
	defer res.Close()
	deadline := time.Now().Add(5 * time.Second)
	for len(res.Instances()) != 1 || res.Instances()[0].Weight != 7 {
		if time.Now().After(deadline) {
			t.Fatalf("no list after compaction: %v", res.Instances())
		}
		time.Sleep(10 * time.Millisecond)
	}
	// and the watch after that list sees new changes
	changed := res.Changed()
	if _, err := cli.Delete(ctx, key); err != nil {
		t.Fatal(err)
	}
	select {
	case <-changed:
	case <-time.After(5 * time.Second):
		t.Fatal("the delete was not seen")
	}
	if len(res.Instances()) != 0 {
		t.Fatalf("got %v after the delete", res.Instances())
	}
}

func TestResolveFailsWhenEtcdIsUnreachable(t *testing.T) {
	reg, err := NewRegistry(RegistryConfig{Endpoints: []string{"127.0.0.1:1"}, DialTimeout: 300 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	defer reg.Close()
	if _, err := reg.Resolve(context.Background(), "echo"); err == nil {
		t.Fatal("no error")
	}
}
