// Package soa lets a Go program find soa services in etcd and call them with Apache Thrift.
//
// A Registry reads {prefix}/services/{service}/ with the official etcd client
// (go.etcd.io/etcd/client/v3), with etcd user/password and TLS when configured.
// Registry.Resolve lists a service and follows it with a watch: a compacted start revision
// lists again, and while etcd is unreachable the last known set is kept.
//
// A Client implements thrift.TClient, so generated code takes it directly:
//
//	client, err := soa.Dial(ctx, reg, catalog.SoaService, soa.ClientOptions{IDLHash: catalog.SoaIDLHash})
//	pong, err := catalog.NewCatalogServiceClient(client).Ping(ctx)
//
// Each call picks an instance with the balancer of registry/BALANCING.md (round robin, smooth
// weighted round robin, weighted random, least in-flight, consistent hash), takes a pooled
// connection (bounded per instance, closed when idle too long, after a transport error, or when
// the instance leaves), and honours ctx's deadline. To an instance advertising "theader", the
// call goes over THeader with soa-deadline-ms, soa-service and soa-instance (registry/SCHEMA.md);
// the server's soa-error is read back. A call that was not sent goes to another instance; a sent
// one is retried only for methods marked idempotent, within a retry budget. Consecutive
// failures eject an instance until a probe readmits it.
//
// Registry values follow registry/SCHEMA.md; ParseInstance implements it.
package soa
