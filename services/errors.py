"""Raising the shop's declared IDL exceptions, and carrying them across services.

``Errors(module)`` builds exceptions from one IDL module's own classes (the classes the server
of that IDL declares, so they pass through soa untouched). ``adopt`` turns a declared exception
received from another service (built from that service's IDL module) into the same exception
of ours, so a handler can re-raise it as its own declared type.
"""

from thriftpy2.thrift import TException


class Errors:
    def __init__(self, module):
        self.shared = module.shared
        self.code = module.shared.ErrorCode

    def shop(self, code, message):
        """``ShopError(code, message)``; ``code`` is an ``ErrorCode`` member name or value."""
        if isinstance(code, str):
            code = getattr(self.code, code)
        return self.shared.ShopError(code=code, message=message)

    def invalid(self, message):
        return self.shop("INVALID_ARGUMENT", message)

    def conflict(self, message):
        return self.shop("CONFLICT", message)

    def not_found(self, kind, ident):
        return self.shared.NotFound(message=f"unknown {kind} {ident!r}", kind=kind, id=str(ident))

    def insufficient(self, sku, requested, available):
        return self.shared.InsufficientStock(
            message=f"{sku}: {requested} requested, {available} available",
            sku=sku, requested=requested, available=available,
        )

    def adopt(self, error):
        """Our own class for a declared exception from another IDL module (same name)."""
        ours = getattr(self.shared, type(error).__name__, None)
        if ours is None or isinstance(error, ours):
            return error
        return ours(**{k: v for k, v in vars(error).items() if not k.startswith("_")})


def is_declared(error):
    """True for a Thrift exception declared in the shop's IDL (it carries an error code)."""
    return isinstance(error, TException) and hasattr(error, "code")
