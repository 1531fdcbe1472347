package soa_test

import (
	"context"
	"fmt"

	"github.com/soa-shop/soa/plugins/go/internal/gen/client_echo"
	"github.com/soa-shop/soa/plugins/go/soa"
)

// The README's snippet: resolve a service through etcd and call it with generated code.
func Example() {
	prefix := testPrefix()
	server := startEcho(prefix)
	defer server.stop()

	ctx := context.Background()
	reg, err := soa.NewRegistry(soa.RegistryConfig{Endpoints: []string{testEtcd()}, Prefix: prefix})
	if err != nil {
		panic(err)
	}
	defer reg.Close()
	client, err := soa.Dial(ctx, reg, client_echo.SoaService, soa.ClientOptions{
		IDLHash:    client_echo.SoaIDLHash,
		Idempotent: []string{"echo"},
	})
	if err != nil {
		panic(err)
	}
	defer client.Close()
	msg, err := client_echo.NewEchoServiceClient(client).Echo(ctx, "hello")
	fmt.Println(msg, err)
	// Output: hello <nil>
}
