"""Per-method call plans, computed once per client: everything a call needs but its arguments."""

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from thriftpy2.thrift import TApplicationException, TMessageType

from soa import idl_docs


@dataclass(frozen=True)
class MethodPlan:
    """How to send one method and read its reply.

    ``make_args(args)`` builds the args struct from positional arguments in IDL order;
    ``unpack(result)`` returns the result struct's value or raises its declared exception.
    """

    name: str
    arg_names: tuple
    args_class: type
    result_class: type
    oneway: bool
    idempotent: bool
    throws: tuple
    message_type: int
    make_args: Callable[[tuple], Any]
    unpack: Callable[[Any], Any]

    def bind(self, args, kwargs):
        """Positional arguments from a mix of positional and keyword ones (TypeError if wrong)."""
        names = self.arg_names
        if len(args) > len(names):
            raise TypeError(f"{self.name}() takes {len(names)} argument(s), got {len(args)}")
        values = list(args) + [None] * (len(names) - len(args))
        for key, value in kwargs.items():
            try:
                i = names.index(key)
            except ValueError:
                raise TypeError(f"{self.name}() got an unexpected argument {key!r}") from None
            if i < len(args):
                raise TypeError(f"{self.name}() got multiple values for argument {key!r}")
            values[i] = value
        return tuple(values)


def plans(service_class, idempotent=(), idl_path=None):
    """``{method: MethodPlan}`` for a thriftpy2 service class.

    ``idempotent`` names methods retried after the request was sent; methods whose doc comment
    in the IDL file at ``idl_path`` carries ``@idempotent`` are added to it.
    """
    marked = set(idempotent) | marked_idempotent(service_class, idl_path)
    out = {}
    for name in service_class.thrift_services:
        args_class = getattr(service_class, f"{name}_args")
        result_class = getattr(service_class, f"{name}_result")
        oneway = bool(getattr(result_class, "oneway", False))
        arg_names = tuple(spec[1] for _, spec in sorted(args_class.thrift_spec.items()))
        result_fields = [spec[1] for _, spec in sorted(result_class.thrift_spec.items())]
        throws = tuple(f for f in result_fields if f != "success")
        has_success = "success" in result_fields
        out[name] = MethodPlan(
            name=name,
            arg_names=arg_names,
            args_class=args_class,
            result_class=result_class,
            oneway=oneway,
            idempotent=name in marked,
            throws=throws,
            message_type=TMessageType.ONEWAY if oneway else TMessageType.CALL,
            make_args=_args_maker(args_class, arg_names),
            unpack=_unpacker(has_success, throws),
        )
    return out


def _args_maker(args_class, arg_names):
    init_order = tuple(name for name, _ in getattr(args_class, "default_spec", ()))
    if init_order == arg_names:
        return lambda args: args_class(*args)

    def make(args):
        return args_class(**dict(zip(arg_names, args)))

    return make


def _unpacker(has_success, throws):
    if has_success and not throws:
        def unpack(result):
            value = result.success
            if value is None:
                raise TApplicationException(TApplicationException.MISSING_RESULT)
            return value
        return unpack

    def unpack(result):
        if has_success:
            value = result.success
            if value is not None:
                return value
        for field in throws:
            error = getattr(result, field)
            if error is not None:
                raise error
        if has_success:
            raise TApplicationException(TApplicationException.MISSING_RESULT)
        return None

    return unpack


def marked_idempotent(service_class, idl_path):
    """Methods whose doc comment in ``idl_path`` carries ``@idempotent``.

    The service's own doc comments win; a method inherited from a service defined in the same
    file is looked up under that service.
    """
    if not idl_path:
        return set()
    try:
        docs = idl_docs.method_docs(idl_path)
    except (OSError, UnicodeDecodeError):
        return set()
    own = docs.get(service_class.__name__, {})
    marked = set()
    for method in service_class.thrift_services:
        doc = own.get(method)
        if doc is None:
            doc = next((d[method] for d in docs.values() if method in d), "")
        if idl_docs.has_marker(doc, "idempotent"):
            marked.add(method)
    return marked
