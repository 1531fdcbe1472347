"""Scaffolding: ``soa new`` (a service from IDL), ``soa gen`` (Go/PHP/Node.js client code) and
``soa idl`` (doc-comment checks and wire-compatibility diffs)."""
