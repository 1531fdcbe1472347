// Package soa lets a Go program find soa services in etcd and call them with Apache Thrift.
//
// A Registry reads {prefix}/services/{service}/ through etcd's v3 JSON gateway (plain HTTP, no
// grpc), failing over between endpoints. Registry.Resolve keeps a service's instance set current
// with a watch. A Client balances calls over those instances by smooth weighted round robin,
// dials each call with the protocol and transport the instance registered, and tries the next
// instance when a connection cannot be made (nothing was sent yet, so any call may be retried).
//
//	reg := soa.NewRegistry(soa.RegistryConfig{Endpoints: []string{"127.0.0.1:2379"}})
//	client, err := soa.Dial(ctx, reg, "catalog", soa.ClientOptions{})
//	defer client.Close()
//	err = client.Call(ctx, func(ctx context.Context, c thrift.TClient) error {
//		pong, err := catalog.NewCatalogServiceClient(c).Ping(ctx)
//		...
//	})
//
// Registry values follow registry/SCHEMA.md; ParseInstance implements it.
package soa
