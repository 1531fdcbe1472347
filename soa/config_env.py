"""``${VAR}`` and ``${VAR:-default}`` in soa.yaml's string values, from the environment.

Applied to the parsed YAML tree before any value is checked, so every key takes it: secrets
(``etcd.password``) stay out of the file, and so can hosts, paths or endpoints. Only string
values are expanded (mapping keys are not); the result is still a string. ``$${`` stands for a
literal ``${``. As in the shell, ``:-`` uses the default when the variable is unset or empty.
A variable that is unset with no default is a ``ConfigError`` naming the key path and the
variable (never a value).
"""

import os
import re

from .errors import ConfigError

_REFERENCE = re.compile(r"\$\$\{|\$\{([A-Za-z_][A-Za-z0-9_]*)(?::-([^}]*))?\}|\$\{[^}]*\}?")


def expand_env(data, source, environ=None, path=""):
    """A copy of ``data`` (the YAML tree) with every string value's references expanded."""
    environ = os.environ if environ is None else environ
    if isinstance(data, dict):
        return {k: expand_env(v, source, environ, _join(path, k)) for k, v in data.items()}
    if isinstance(data, list):
        return [expand_env(v, source, environ, f"{path}[{i}]") for i, v in enumerate(data)]
    if isinstance(data, str) and "${" in data:
        return _expand(data, source, environ, path)
    return data


def _expand(text, source, environ, path):
    def substitute(match):
        whole = match.group(0)
        if whole == "$${":
            return "${"
        name, default = match.group(1), match.group(2)
        if name is None:
            raise ConfigError(
                "bad ${...} reference: expected ${NAME} or ${NAME:-default} (NAME is letters,"
                " digits and _)", source=source, path=path or None)
        value = environ.get(name)
        if value:
            return value
        if default is not None:
            return default
        if value is None:
            raise ConfigError(
                f"environment variable {name} is not set (use ${{{name}:-default}} for a"
                " default)", source=source, path=path or None)
        return value

    return _REFERENCE.sub(substitute, text)


def _join(path, key):
    return f"{path}.{key}" if path else str(key)
