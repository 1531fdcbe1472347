"""The ``alerts:`` section of soa.yaml (or a ``--rules`` file), parsed into frozen dataclasses.

Every bad value is one ``ConfigError`` line naming the file, the key path (with the rule's name)
and, for expressions, policies and templates, the column: ``soa.yaml:
alerts.rules[order-low].expr: column 12: expected ')', found end of expression``.
"""

import re
from dataclasses import dataclass, field
from pathlib import Path
from types import MappingProxyType

import yaml

from soa._check import Fields, show
from soa.errors import ConfigError

from . import expr as expr_module
from .nodes import selectors
from .policy import Policies

SEVERITIES = ("critical", "warning", "info")
OUTPUTS = ("stdout", "log", "none")
PLACEHOLDERS = ("rule", "severity", "status", "value", "series", "expr", "started_at", "id")
DEFAULT_MESSAGE = "{rule} is {status}: {series}"
DEFAULT_STATE = ".soa/monitor/state.json"
# A soa service call's arguments: by default the shape of a publish(idempotency_key, topic,
# payload, key) method; values are templates over the notification.
DEFAULT_CALL_ARGS = MappingProxyType({
    "idempotency_key": "{id}", "topic": "{topic}", "payload": "{json}", "key": "{rule}",
})
_NAME = re.compile(r"[A-Za-z0-9_.-]{1,128}")
_PLACEHOLDER = re.compile(r"\{([^{}]*)\}")
_POLICY = re.compile(r"[\s,]*([A-Za-z_]\w*)\s*\(([^()]*)\)\s*")


@dataclass(frozen=True)
class Rule:
    name: str
    expr: str
    tree: object  # the parsed expression (soa.monitor.expr nodes)
    policies: Policies = field(default_factory=Policies)
    severity: str = "warning"
    message: str = DEFAULT_MESSAGE


@dataclass(frozen=True)
class Webhook:
    url: str
    timeout: float = 2.0
    retries: int = 5  # attempts after the first


@dataclass(frozen=True)
class ServiceCall:
    """Notifications as calls of a soa service's method (for example a messaging hub's publish)."""

    service: str
    method: str
    topic: str = "alerts"
    args: MappingProxyType = field(default_factory=lambda: DEFAULT_CALL_ARGS)  # name -> template
    retries: int = 5
    path: str = "alerts.call"  # where it was configured, for errors


@dataclass(frozen=True)
class AlertsConfig:
    source: str = "soa.yaml"
    rules: tuple = ()
    interval: float = 5.0
    scrape_timeout: float = 2.0
    state: Path = Path(DEFAULT_STATE)
    output: str = "stdout"
    webhooks: tuple = ()
    call: ServiceCall | None = None

    def check(self, config):
        """The service call's service must be in ``config`` (its IDL comes from there)."""
        if self.call is not None and self.call.service not in config.services:
            known = ", ".join(sorted(config.services)) or "none"
            raise ConfigError(f"no service {self.call.service!r} in {config.source} "
                              f"(services: {known})", source=self.source,
                              path=f"{self.call.path}.service")

    def services(self):
        """The services the rules name with ``service="x"`` (their counts exist even at 0)."""
        names = set()
        for rule in self.rules:
            for selector in selectors(rule.tree):
                for m in selector.matchers:
                    if m.label == "service" and m.op == "=":
                        names.add(m.value)
        return names


def parse_alerts(f, root):
    """``f`` is the ``alerts`` mapping's ``Fields``; ``root`` resolves the state file's path."""
    interval = _duration(f, "interval", 5.0)
    webhooks = _webhooks(f)
    call = None
    if "call" in f.data:
        call = _call(f.sub("call"))
    rules_raw = f.raw("rules", [])
    if not isinstance(rules_raw, list):
        raise f.fail(f.key("rules"), f"expected a list of rules, got {show(rules_raw)}")
    rules, names = [], set()
    for i, item in enumerate(rules_raw):
        rule = _rule(item, f.source, f"{f.key('rules')}[{i}]")
        if rule.name in names:
            raise f.fail(f"{f.key('rules')}[{rule.name}]", "a second rule with this name")
        names.add(rule.name)
        rules.append(rule)
    config = AlertsConfig(
        source=f.source,
        rules=tuple(rules),
        interval=interval,
        scrape_timeout=_duration(f, "scrape_timeout", min(2.0, interval)),
        state=(Path(root) / f.str("state", DEFAULT_STATE)),
        output=f.choice("output", OUTPUTS, "stdout"),
        webhooks=webhooks,
        call=call,
    )
    f.done()
    return config


def load_rules(path, root=None):
    """A ``--rules`` file: the ``alerts:`` mapping itself, or a document with an ``alerts:`` key."""
    source = str(path)
    try:
        data = yaml.safe_load(Path(path).read_text(encoding="utf-8"))
    except OSError as e:
        raise ConfigError(f"cannot read: {e.strerror}", source=source) from e
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        where = f"line {mark.line + 1}: " if mark else ""
        raise ConfigError(f"{where}invalid YAML: {getattr(e, 'problem', e)}", source=source) from e
    if isinstance(data, dict) and "alerts" in data:
        return parse_alerts(Fields(data, source).sub("alerts"), root or Path(path).parent)
    return parse_alerts(Fields(data, source), root or Path(path).parent)


def _duration(f, name, default):
    value = f.raw(name, default)
    seconds = expr_module.duration(value)
    if seconds is None or seconds <= 0:
        raise f.fail(f.key(name), f"expected a duration such as 5s or 1m, got {show(value)}")
    return seconds


def _webhooks(f):
    if "webhook" not in f.data:
        f.seen.add("webhook")
        return ()
    raw = f.raw("webhook")
    items = raw if isinstance(raw, list) else [raw]
    out = []
    for i, item in enumerate(items):
        path = f.key("webhook") + (f"[{i}]" if isinstance(raw, list) else "")
        if isinstance(item, str):
            item = {"url": item}
        w = Fields(item, f.source, path)
        url = w.str("url")
        if not re.match(r"https?://[^/\s]+", url):
            raise w.fail(w.key("url"), f"expected an http:// or https:// URL, got {show(url)}")
        out.append(Webhook(url, _duration(w, "timeout", 2.0), w.int("retries", 5, lo=0, hi=100)))
        w.done()
    return tuple(out)


def _call(f):
    service = f.str("service")
    method = f.str("method")
    topic = f.str("topic", "alerts")
    args = dict(DEFAULT_CALL_ARGS)
    if "args" in f.data:
        args = f.labels("args")
        for name, template in args.items():
            _template(template, f.source, f"{f.key('args')}.{name}", extra=("topic", "json"))
    retries = f.int("retries", 5, lo=0, hi=100)
    f.done()
    return ServiceCall(service, method, topic, MappingProxyType(args), retries, f.path)


def _rule(item, source, index_path):
    name = item.get("name") if isinstance(item, dict) else None
    path = index_path
    if isinstance(name, str) and _NAME.fullmatch(name):
        path = f"{index_path.rsplit('[', 1)[0]}[{name}]"
    f = Fields(item, source, path)
    name = f.str("name")
    if not _NAME.fullmatch(name):
        raise f.fail(f.key("name"), f"expected 1-128 of [A-Za-z0-9_.-], got {show(name)}")
    text = f.str("expr")
    try:
        tree = expr_module.parse(text)
    except expr_module.ExprError as e:
        raise f.fail(f.key("expr"), e.detail) from e
    message = f.str("message", DEFAULT_MESSAGE)
    _template(message, source, f.key("message"))
    rule = Rule(
        name=name,
        expr=text,
        tree=tree,
        policies=_policies(f),
        severity=f.choice("severity", SEVERITIES, "warning"),
        message=message,
    )
    f.done()
    return rule


def _template(text, source, path, extra=()):
    for m in _PLACEHOLDER.finditer(text):
        key = m.group(1)
        if key in PLACEHOLDERS or key in extra or re.fullmatch(r"label:[A-Za-z_]\w*", key):
            continue
        known = ", ".join(f"{{{k}}}" for k in PLACEHOLDERS + tuple(extra)) + ", {label:NAME}"
        raise ConfigError(f"column {m.start() + 1}: unknown placeholder {m.group()} "
                          f"(known: {known})", source=source, path=path)


def _policies(f):
    """``policies``: one string (``"times(3) snooze(5m)"``) or a list of them. A list is joined
    with ", " first, so a YAML flow list (``[limit(2, 10m)]``, which YAML splits at the comma)
    reads as written; columns count in that joined text."""
    raw = f.raw("policies", [])
    items = [raw] if isinstance(raw, str) else raw
    if not isinstance(items, list) or not all(isinstance(i, str) for i in items):
        raise f.fail(f.key("policies"), f"expected a list such as [times(3), snooze(5m)], "
                                        f"got {show(raw)}")
    text = ", ".join(items)
    path = f.key("policies")
    found, pos = {}, 0
    while text[pos:].strip():
        m = _POLICY.match(text, pos)
        if not m:
            column = pos + len(text[pos:]) - len(text[pos:].lstrip(" ,")) + 1
            raise ConfigError(f"column {column}: expected times(n), percent(p, window), "
                              f"limit(n, period) or snooze(duration)", source=f.source, path=path)
        name, value = _policy(m, f.source, path)
        if name in found:
            raise ConfigError(f"column {m.start(1) + 1}: {name}() given twice", source=f.source,
                              path=path)
        found[name] = value
        pos = m.end()
    return Policies(**found)


def _policy(m, source, path):
    def fail(column, message):
        return ConfigError(f"column {column}: {message}", source=source, path=path)

    name, inner, offset = m.group(1), m.group(2), m.start(2) + 1
    args, columns, pos = [], [], 0
    for part in inner.split(","):
        columns.append(offset + pos + len(part) - len(part.lstrip()))
        args.append(part.strip())
        pos += len(part) + 1
    arity = {"times": 1, "percent": 2, "limit": 2, "snooze": 1}
    if name not in arity:
        raise fail(m.start(1) + 1, f"unknown policy {name}() (policies: times, percent, limit,"
                                   f" snooze)")
    if len(args) != arity[name] or not all(args):
        raise fail(offset, f"{name}() takes {arity[name]} argument(s)")

    def count(k, lo):
        if not re.fullmatch(r"\d+", args[k]) or int(args[k]) < lo:
            raise fail(columns[k], f"expected an integer >= {lo}, got {args[k]}")
        return int(args[k])

    def seconds(k):
        value = expr_module.duration(args[k])
        if value is None or value <= 0:
            raise fail(columns[k], f"expected a duration such as 30s, 5m or 1h, got {args[k]}")
        return value

    if name == "times":
        return name, count(0, 1)
    if name == "snooze":
        return name, seconds(0)
    if name == "limit":
        return name, (count(0, 1), seconds(1))
    try:
        p = float(args[0].rstrip("%"))
    except ValueError:
        p = -1.0
    if not 0 < p <= 100:
        raise fail(columns[0], f"expected a percentage in (0, 100], got {args[0]}")
    return name, (p, seconds(1))
