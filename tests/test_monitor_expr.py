"""The rule language: parsing, errors with columns, alerts: config, `soa monitor --check`."""

import subprocess
import sys

import pytest

from soa.config import parse_config
from soa.errors import ConfigError
from soa.monitor import expr
from soa.monitor.expr import Aggregate, Binary, Detect, ExprError, Number, Unary, parse
from soa.monitor.rules import load_rules


def test_the_issue_examples_parse():
    empty = parse('empty(soa_instances{service="order"})')
    assert empty == Detect("empty", expr.Selector(
        "soa_instances", (expr.Matcher("service", "=", "order"),)))
    low = parse('val(soa_instances{service="order"}) < 2')
    assert isinstance(low, Binary) and low.op == "<" and low.right == Number(2.0)


def test_precedence_and_aggregation_forms():
    tree = parse('sum(count(soa_server_calls_total{outcome!="ok"}, 1m)) by (service) / '
                 'sum by (service) (count(soa_server_calls_total, 1m)) > 0.05 and not '
                 'exist(x) or -val(y) * 2 + 1 >= 3')
    assert tree.op == "or"
    conj = tree.left
    assert conj.op == "and" and isinstance(conj.right, Unary) and conj.right.op == "not"
    ratio = conj.left.left
    assert ratio.op == "/"
    assert isinstance(ratio.left, Aggregate) and ratio.left.by == ("service",)
    assert isinstance(ratio.right, Aggregate) and ratio.right.by == ("service",)
    assert ratio.left.expr.window == 60.0
    right = tree.right
    assert right.op == ">=" and right.left.op == "+" and right.left.left.op == "*"
    assert isinstance(right.left.left.left, Unary) and right.left.left.left.op == "-"


@pytest.mark.parametrize("window, seconds", [
    ("250ms", 0.25), ("30s", 30.0), ("5m", 300.0), ("2h", 7200.0), ("1d", 86400.0), ("90", 90.0),
])
def test_count_windows(window, seconds):
    assert parse(f"count(x, {window})").window == seconds


def test_matchers_regex_and_escapes():
    tree = parse(r'val(x{a=~"ord.*", b!~"x|y", c="q\"uote",})')
    a, b, c = tree.selector.matchers
    assert a.matches({"a": "order"}) and not a.matches({"a": "border"})
    assert b.matches({"b": "z"}) and not b.matches({"b": "x"})
    assert c.value == 'q"uote'
    assert parse("val(x{})").selector.matchers == ()


@pytest.mark.parametrize("text, column, words", [
    ("val(x", 6, "expected ')'"),
    ('val(soa_instances{service="order"}) < < 2', 39, "expected a number"),
    ("foo(x)", 1, "unknown function"),
    ("x > 1", 1, "read through val()"),
    ("count(x)", 8, "expected ','"),
    ("count(x, 0s)", 10, "longer than 0"),
    ("count(x, y)", 10, "window"),
    ("val(x{a=b})", 9, "quoted"),
    ("val(x{a~\"b\"})", 8, "unexpected character"),
    ("val(x) < 2 < 3", 12, "do not chain"),
    ('val(x{a="b)', 9, "unterminated string"),
    ('val(x{a=~"("})', 10, "bad regular expression"),
    ("val(x) 5", 8, "expected an operator"),
    ("5m > 1", 1, "duration"),
    ("sum by (a) (val(x)) by (b)", 21, "twice"),
    ("val(and)", 5, "series name"),
    ("   ", 1, "empty"),
])
def test_errors_name_the_column(text, column, words):
    with pytest.raises(ExprError) as e:
        parse(text)
    assert e.value.column == column
    assert words in str(e.value)
    assert str(e.value).startswith(f"column {column}: ")


def _config(tmp_path, alerts_yaml):
    return parse_config("etcd: {endpoints: ['127.0.0.1:2379']}\nalerts:\n" + alerts_yaml,
                        source="soa.yaml", root=tmp_path)


def test_the_alerts_section(tmp_path):
    config = _config(tmp_path, """
  interval: 2s
  webhook: http://127.0.0.1:9/hook
  call: {service: hub, method: publish, topic: alerts}
  rules:
    - name: order-low
      expr: val(soa_instances{service="order"}) < 2
      policies: [times(3), percent(50, 1m), limit(2, 10m), snooze(5m)]
      severity: critical
      message: "{rule}: {value} instance(s) of {label:service}"
    - name: quiet
      expr: exist(up)
""")
    alerts = config.alerts
    assert alerts.interval == 2.0 and alerts.scrape_timeout == 2.0
    assert alerts.state == tmp_path / ".soa/monitor/state.json"
    assert alerts.webhooks[0].url == "http://127.0.0.1:9/hook"
    assert alerts.call.service == "hub" and alerts.call.args["payload"] == "{json}"
    low, quiet = alerts.rules
    p = low.policies
    assert (p.times, p.percent, p.limit, p.snooze) == (3, (50.0, 60.0), (2, 600.0), 300.0)
    assert low.severity == "critical"
    assert quiet.policies.times is None and quiet.policies.snooze is None
    assert alerts.services() == {"order"}


def test_policies_as_one_string(tmp_path):
    config = _config(tmp_path, """
  rules:
    - {name: r, expr: exist(x), policies: "times(2) limit(1, 1h)"}
""")
    assert config.alerts.rules[0].policies.limit == (1, 3600.0)


@pytest.mark.parametrize("rule, expected", [
    ('{name: low, expr: "val(x) <"}',
     "soa.yaml: alerts.rules[low].expr: column 9: expected a number"),
    ("{name: low, expr: exist(x), policies: [times(0)]}",
     "soa.yaml: alerts.rules[low].policies: column 7: expected an integer >= 1, got 0"),
    ("{name: low, expr: exist(x), policies: [snooze(1m), bogus(2)]}",
     "soa.yaml: alerts.rules[low].policies: column 13: unknown policy bogus()"),
    ("{name: low, expr: exist(x), policies: [percent(0, 1m)]}",
     "soa.yaml: alerts.rules[low].policies: column 9: expected a percentage"),
    ("{name: low, expr: exist(x), policies: [limit(2)]}",
     "soa.yaml: alerts.rules[low].policies: column 7: limit() takes 2 argument(s)"),
    ("{name: low, expr: exist(x), policies: [times(1), times(2)]}",
     "soa.yaml: alerts.rules[low].policies: column 11: times() given twice"),
    ('{name: low, expr: exist(x), message: "now {vlue}"}',
     "soa.yaml: alerts.rules[low].message: column 5: unknown placeholder {vlue}"),
    ("{name: low, expr: exist(x), severity: huge}",
     "soa.yaml: alerts.rules[low].severity: expected one of critical | warning | info"),
    ("{name: low, expr: exist(x), fire: yes}", "soa.yaml: alerts.rules[low].fire: unknown key"),
    ("{expr: exist(x)}", "soa.yaml: alerts.rules[0].name: is required"),
    ("{name: 'bad name', expr: exist(x)}", "soa.yaml: alerts.rules[0].name: expected 1-128"),
])
def test_bad_rules_are_one_line_naming_rule_and_column(tmp_path, rule, expected):
    with pytest.raises(ConfigError) as e:
        _config(tmp_path, f"  rules:\n    - {rule}\n")
    assert str(e.value).startswith(expected), str(e.value)
    assert "\n" not in str(e.value)


def test_duplicate_rule_names(tmp_path):
    with pytest.raises(ConfigError, match=r"alerts.rules\[a\]: a second rule"):
        _config(tmp_path, "  rules:\n    - {name: a, expr: exist(x)}\n"
                          "    - {name: a, expr: exist(y)}\n")


def test_a_rules_file(tmp_path):
    path = tmp_path / "rules.yaml"
    path.write_text("rules:\n  - {name: a, expr: 'empty(soa_instances{service=\"x\"})'}\n")
    assert load_rules(path).rules[0].name == "a"
    path.write_text("alerts:\n  rules:\n  - {name: b, expr: 'exist(y'}\n")
    with pytest.raises(ConfigError) as e:
        load_rules(path)
    assert str(e.value) == (f"{path}: alerts.rules[b].expr: column 8: expected ')', found end "
                            f"of expression")


def _soa(tmp_path, *args):
    return subprocess.run([sys.executable, "-m", "soa", *args], cwd=tmp_path, capture_output=True,
                          text=True, timeout=60)


def test_monitor_check_cli(tmp_path):
    (tmp_path / "soa.yaml").write_text(
        "alerts:\n  rules:\n    - {name: low, expr: 'val(soa_instances{service=\"order\"}) < 2',"
        " policies: [times(2), snooze(1m)]}\n")
    ok = _soa(tmp_path, "monitor", "--check")
    assert ok.returncode == 0 and ok.stdout.strip() == "ok: 1 rule(s) in soa.yaml", ok.stderr
    (tmp_path / "bad.yaml").write_text("rules:\n  - {name: broken, expr: 'val(x) > > 1'}\n")
    bad = _soa(tmp_path, "monitor", "--check", "--rules", "bad.yaml")
    assert bad.returncode == 2
    assert bad.stderr.strip() == ("error: bad.yaml: rules[broken].expr: column 10: expected a "
                                  "number, a function or '(', found '>'")
    (tmp_path / "soa.yaml").write_text("alerts:\n  rules:\n    - {name: x, expr: 'val(y'}\n")
    serve = _soa(tmp_path, "monitor")
    assert serve.returncode == 2 and "Traceback" not in serve.stderr
    assert serve.stderr.startswith("error: soa.yaml: alerts.rules[x].expr: column 6:")


def test_the_service_call_needs_a_service_of_the_config(tmp_path):
    config = _config(tmp_path, "  call: {service: hub, method: publish}\n  rules: []\n")
    with pytest.raises(ConfigError) as e:
        config.alerts.check(config)
    assert str(e.value) == ("soa.yaml: alerts.call.service: no service 'hub' in soa.yaml "
                            "(services: none)")
