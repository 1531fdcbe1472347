"""soa.idl_docs: doc comments of services and methods, and the @idempotent marker."""

from fixtures.client_handler import IDL

from soa import idl as idl_module
from soa.clients.plan import marked_idempotent
from soa.idl_docs import has_marker, method_docs, parse, service_docs

TEXT = '''
include "shared.thrift"
namespace py shop

/** A struct's doc is not a service's. */
struct S { 1: i32 x }

/**
 * The counter.
 * @since 1
 */
service Counter extends shared.Base {
  /** Ping it. @idempotent */
  void ping(),
  // Echo
  // the message
  string echo(1: string msg = "a, (b)") throws (1: Oops e) (ann = "x");
  i64 add(1: i64 n), /* a trailing comment documents nothing after it */
  oneway void fire(1: map<string, list<i32>> m)
  # hash doc
  list<string> whoami()
  void nodoc()
}

// the other one
service Other {
  void ping() // trailing
}
'''


def test_parse_services_and_methods():
    docs = parse(TEXT)
    assert list(docs) == ["Counter", "Other"]
    counter = docs["Counter"]
    assert counter.doc == "The counter.\n@since 1"
    assert counter.methods == {
        "ping": "Ping it. @idempotent",
        "echo": "Echo\nthe message",
        "add": "",
        "fire": "",
        "whoami": "hash doc",
        "nodoc": "",
    }
    assert docs["Other"].doc == "the other one"
    assert docs["Other"].methods == {"ping": ""}


def test_file_api_and_marker():
    docs = method_docs(IDL)
    assert docs["EchoService"]["bump"] == "Counts calls on the serving instance; not idempotent."
    assert has_marker(docs["EchoService"]["echo"], "idempotent")
    assert not has_marker(docs["EchoService"]["bump"], "idempotent")
    assert not has_marker("@idempotently", "idempotent")
    assert not has_marker("x@idempotent", "idempotent")
    assert service_docs(IDL) == {
        "EchoService": "Echo and friends, each telling which instance served it."}


def test_marked_idempotent_methods():
    service = idl_module.load(IDL).EchoService
    assert marked_idempotent(service, IDL) == {"ping", "echo", "slow", "whoami", "place",
                                               "deadline_ms"}
    assert marked_idempotent(service, None) == set()


def test_a_comma_inside_a_map_return_type_keeps_the_doc():
    from soa.idl_docs import parse

    docs = parse("""
    service S {
      /** Prices by SKU. */
      map<string, i64> prices(1: list<string> skus),
      /** After it. */
      void after()
    }
    """)
    assert docs["S"].methods == {"prices": "Prices by SKU.", "after": "After it."}
