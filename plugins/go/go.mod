module github.com/soa-shop/soa/plugins/go

go 1.21

require github.com/apache/thrift v0.17.0
