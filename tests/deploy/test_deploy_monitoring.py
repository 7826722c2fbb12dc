"""Alert rules and the Grafana dashboard: well-formed, about metrics that exist, runbooks.

promtool (Debian package `prometheus`) checks the rules' PromQL and runs the alert unit tests
in promtool/; install it with `apt-get install -y --no-install-recommends prometheus`.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
from prometheus_client import Counter, Gauge, Histogram, Summary

from tests.deploy import manifests, sources, strict_yaml

RULES_FILE = sources.DEPLOY / "prometheus" / "rules" / "gridlink-alerts.yml"
PROMETHEUS_CONFIG = sources.DEPLOY / "prometheus" / "prometheus.yml"
DASHBOARD = sources.DEPLOY / "grafana" / "dashboards" / "gridlink.json"
OPERATIONS = sources.ROOT / "docs" / "operations.md"
PROMTOOL_TESTS = Path(__file__).parent / "promtool" / "gridlink-alerts.test.yml"

# Series from outside GridLink that the rules and the dashboard may use.
RABBITMQ_METRICS = {  # rabbitmq_prometheus, per-object metrics enabled
    "rabbitmq_queue_messages_ready", "rabbitmq_queue_messages", "rabbitmq_queue_consumers",
    "rabbitmq_queue_messages_unacked",
}
KUBE_STATE_METRICS = {
    "kube_horizontalpodautoscaler_status_current_replicas",
    "kube_horizontalpodautoscaler_spec_max_replicas", "kube_pod_container_status_restarts_total",
}
PROMETHEUS_METRICS = {"up"}
# What the issue asks an on-call engineer to be paged or warned about -> the alert for it.
REQUIRED_ALERTS = {
    "gateway down": "GridLinkGatewayDown",
    "no chargers connected": "GridLinkNoChargersConnected",
    "CALLERROR rate": "GridLinkCallErrorRateHigh",
    "handler latency p99": "GridLinkHandlerLatencyHigh",
    "queue backlog": "GridLinkQueueBacklog",
    "messages dead-lettered": "GridLinkMessagesDeadLettered",
    "MongoDB write errors": "GridLinkMongoErrors",
    "refused handshakes": "GridLinkHandshakesRefused",
    "broker publish failures": "GridLinkBrokerPublishFailures",
}
PROMQL_WORDS = {"by", "without", "on", "ignoring", "group_left", "group_right", "and", "or",
                "unless", "bool", "offset", "inf", "nan", "le"}


def gridlink_series() -> set[str]:
    """Every series name GridLink exposes: services/metrics.py, the commands' file server and
    its certificate expiry gauge, the HTTP API's (api/metrics.py)."""
    from api import metrics as api_metrics
    from commands.files import transfers as file_server
    from commands.security import expiry
    from services import metrics

    names: set[str] = set()
    for value in [*vars(metrics).values(), *vars(file_server).values(),
                  *vars(expiry).values(), *vars(api_metrics).values()]:
        if isinstance(value, Counter):
            names |= {value._name + "_total"}
        elif isinstance(value, Gauge):
            names.add(value._name)
        elif isinstance(value, Histogram):
            names |= {value._name + s for s in ("_bucket", "_sum", "_count")}
        elif isinstance(value, Summary):
            names |= {value._name + s for s in ("_sum", "_count")}
    return names


def metric_names(expr: str) -> set[str]:
    """Metric names in a PromQL expression (Grafana's $variables allowed)."""
    text = re.sub(r'"(?:[^"\\]|\\.)*"', '""', expr)          # string literals
    text = re.sub(r"\{[^}]*\}", "", text)                     # label matchers
    text = re.sub(r"\[[^\]]*\]", "", text)                    # range selectors
    text = re.sub(r"\b(by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)", "", text)
    text = re.sub(r"\boffset\s+\S+", "", text)
    text = re.sub(r"\$\w+", "", text)
    text = re.sub(r"\b\d+(\.\d+)?(e[+-]?\d+)?\b", "", text)
    names = set()
    for match in re.finditer(r"[A-Za-z_:][A-Za-z0-9_:]*", text):
        after = text[match.end():].lstrip()
        if after.startswith("(") or match.group() in PROMQL_WORDS:
            continue
        names.add(match.group())
    return names


def test_metric_name_extraction() -> None:
    assert metric_names(
        'sum by (code) (rate(a_total{code=~"x|y"}[5m])) / ignoring(code) group_left() '
        'sum(rate(b_total[$__rate_interval])) > 0.05 and on() c offset 30m > 1e-3'
    ) == {"a_total", "b_total", "c"}
    quantile = 'histogram_quantile(0.99, sum by (le) (rate(h_bucket[5m])))'
    assert metric_names(quantile) == {"h_bucket"}


def rules() -> list[dict[str, Any]]:
    return [rule for group in strict_yaml.load_file(RULES_FILE)["groups"]
            for rule in group["rules"]]


def test_prometheus_rule_resource_has_the_same_rules_as_compose() -> None:
    resource = manifests.by_kind(list(sources.rendered("base")), "PrometheusRule")["gridlink"]
    assert resource["spec"]["groups"] == strict_yaml.load_file(RULES_FILE)["groups"]


def test_every_alert_is_actionable() -> None:
    anchors = sources.doc_anchors(OPERATIONS)
    names = [rule["alert"] for rule in rules()]
    assert len(names) == len(set(names))
    for rule in rules():
        assert set(rule) == {"alert", "expr", "for", "labels", "annotations"}, rule["alert"]
        assert rule["labels"]["severity"] in {"critical", "warning"}
        annotations = rule["annotations"]
        assert annotations["summary"] and annotations["description"]
        link = annotations["runbook_url"]
        assert link == f"docs/operations.md#{rule['alert'].lower()}"
        assert link.split("#")[1] in anchors, f"docs/operations.md has no section {rule['alert']}"
    for concern, alert in REQUIRED_ALERTS.items():
        assert alert in names, f"no alert for {concern}"


def test_alerts_use_only_metrics_that_exist() -> None:
    known = gridlink_series() | RABBITMQ_METRICS | KUBE_STATE_METRICS | PROMETHEUS_METRICS
    for rule in rules():
        unknown = metric_names(rule["expr"]) - known
        assert not unknown, f"{rule['alert']} uses unknown series {sorted(unknown)}"


def test_every_gridlink_metric_is_on_the_dashboard_or_alerted() -> None:
    used = {m for rule in rules() for m in metric_names(rule["expr"])}
    used |= {m for _, expr in dashboard_queries() for m in metric_names(expr)}
    families = {re.sub(r"_(bucket|sum|count)$", "", m) for m in used}
    for series in gridlink_series():
        family = re.sub(r"_(bucket|sum|count)$", "", series)
        assert family in families or series in used, f"{series} is neither shown nor alerted"


def dashboard_queries() -> list[tuple[str, str]]:
    dashboard = json.loads(DASHBOARD.read_text())
    return [(panel["title"], target["expr"]) for panel in dashboard["panels"]
            for target in panel.get("targets", [])]


def test_dashboard_shows_what_the_issue_asks() -> None:
    dashboard = json.loads(DASHBOARD.read_text())
    panels = [p for p in dashboard["panels"] if p["type"] != "row"]
    assert len({p["id"] for p in dashboard["panels"]}) == len(dashboard["panels"])
    queries = dashboard_queries()
    wanted = {
        "connected chargers per pod": r"by \(instance\) \(gridlink_gateway_connections_open",
        "messages by action": r"by \(action\) \(rate\(gridlink_gateway_calls_total",
        "latency percentiles": r"histogram_quantile\(0\.99, sum by \(le\) \(rate\("
                               r"gridlink_gateway_call_seconds_bucket",
        "errors by code": r"by \(code\) \(rate\(gridlink_gateway_callerrors_total",
        "active transactions": r"gridlink_transactions_active",
        "queue depth": r"rabbitmq_queue_messages_ready",
    }
    for what, pattern in wanted.items():
        assert any(re.search(pattern, expr) for _, expr in queries), f"no panel for {what}"
    known = gridlink_series() | RABBITMQ_METRICS
    for title, expr in queries:
        assert not metric_names(expr) - known, f"panel {title!r}: {expr}"
    for panel in panels:
        assert panel["datasource"]["uid"] == "${datasource}", panel["title"]
    variables = {v["name"]: v for v in dashboard["templating"]["list"]}
    assert variables["datasource"]["query"] == "prometheus"
    # Under compose there is no namespace label: "All" must match series without it.
    assert variables["namespace"]["allValue"] == ".*"


def promtool() -> str:
    found = shutil.which("promtool")
    if found is None:
        pytest.fail("promtool is not installed: "
                    "apt-get install -y --no-install-recommends prometheus")
    return found


def run_promtool(*args: str) -> str:
    result = subprocess.run([promtool(), *args], capture_output=True, text=True, timeout=60,
                            check=False)
    assert result.returncode == 0, result.stdout + result.stderr
    return result.stdout


def test_promtool_accepts_the_rules_and_the_compose_config() -> None:
    assert f"SUCCESS: {len(rules())} rules found" in run_promtool("check", "rules", str(RULES_FILE))
    run_promtool("check", "config", str(PROMETHEUS_CONFIG))


def test_alerts_fire_on_the_failures_they_are_for() -> None:
    tested = {m.group(1) for m in re.finditer(r"alertname: (\w+)", PROMTOOL_TESTS.read_text())}
    assert tested == {rule["alert"] for rule in rules()}, "every alert has a unit test"
    run_promtool("test", "rules", str(PROMTOOL_TESTS))
