module soa-example/catalog-call

go 1.26

require (
	github.com/apache/thrift v0.17.0
	github.com/soa-shop/soa/plugins/go v0.0.0
)

replace github.com/soa-shop/soa/plugins/go => ../..
