"""Alert rules pass ``promtool test rules``; rules and dashboard name only metrics LiveTag exports."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml
from prometheus_client import CollectorRegistry

from consumers.observability.metrics import PipelineMetrics

MONITORING = Path(__file__).resolve().parents[2] / "k8s" / "monitoring"
RULES = MONITORING / "livetag-alerts.yaml"
RULE_TESTS = MONITORING / "livetag-alerts.test.yaml"
DASHBOARD = MONITORING / "livetag-dashboard.json"
METRIC = re.compile(r"\blivetag_[a-z0-9_]+")
#: What Grafana substitutes before a query reaches Prometheus.
GRAFANA_VARIABLES = {"$__rate_interval": "5m", "$__interval": "1m", "$__range": "1h"}
SUFFIXES = {"counter": ("_total", "_created"), "gauge": ("",), "histogram": ("_bucket", "_sum", "_count", "_created"),
            "info": ("_info",), "summary": ("", "_sum", "_count", "_created")}


def _promtool() -> str:
    found = shutil.which("promtool")
    if found is None:
        pytest.fail("promtool is not installed (Debian's prometheus package; scripts/test.sh installs it)")
    return found


def exported_names() -> set[str]:
    """Every sample name a :class:`PipelineMetrics` registry can export (labelled or not yet)."""
    registry = CollectorRegistry()
    PipelineMetrics(registry)
    names: set[str] = set()
    for family in registry.collect():
        names |= {family.name + suffix for suffix in SUFFIXES[family.type]}
    return names


def unknown_metrics(expression: str, known: set[str]) -> set[str]:
    """``livetag_*`` names in a PromQL expression that no registry exports."""
    return set(METRIC.findall(expression)) - known


def dashboard_queries() -> list[str]:
    document = json.loads(DASHBOARD.read_text(encoding="utf-8"))
    return [target["expr"] for panel in document["panels"] for target in panel.get("targets", [])]


def rule_expressions() -> list[str]:
    document = yaml.safe_load(RULES.read_text(encoding="utf-8"))
    return [rule["expr"] for group in document["groups"] for rule in group["rules"]]


def test_promtool_checks_and_unit_tests_the_alert_rules() -> None:
    promtool = _promtool()
    check = subprocess.run([promtool, "check", "rules", str(RULES)], capture_output=True, text=True, check=False)
    assert check.returncode == 0, check.stdout + check.stderr
    assert "SUCCESS: 8 rules found" in check.stdout
    result = subprocess.run([promtool, "test", "rules", RULE_TESTS.name], cwd=MONITORING, capture_output=True,
                            text=True, check=False)
    assert result.returncode == 0, result.stdout + result.stderr


def test_a_wrong_threshold_fails_the_rule_tests(tmp_path: Path) -> None:
    """The rule tests can fail: a latency alert at 10 s no longer fires on a 4.97 s p99."""
    promtool = _promtool()
    rules = RULES.read_text(encoding="utf-8")
    assert "[5m]))) > 2\n" in rules
    (tmp_path / RULES.name).write_text(rules.replace("[5m]))) > 2\n", "[5m]))) > 10\n"), encoding="utf-8")
    shutil.copy(RULE_TESTS, tmp_path / RULE_TESTS.name)
    result = subprocess.run([promtool, "test", "rules", RULE_TESTS.name], cwd=tmp_path, capture_output=True,
                            text=True, check=False)
    assert result.returncode != 0
    assert "LiveTagEndToEndLatencyHigh" in result.stdout + result.stderr


def test_every_alert_has_a_severity_and_a_summary() -> None:
    document = yaml.safe_load(RULES.read_text(encoding="utf-8"))
    rules = [rule for group in document["groups"] for rule in group["rules"]]
    assert {rule["alert"] for rule in rules} >= {
        "LiveTagConsumerLagGrowing", "LiveTagDeadLetters", "LiveTagNoMatches", "LiveTagFramesDropped",
        "LiveTagSourceStalled", "LiveTagEndToEndLatencyHigh"}
    for rule in rules:
        assert rule["labels"]["severity"] in ("warning", "critical")
        assert rule["annotations"]["summary"]
    tested = yaml.safe_load(RULE_TESTS.read_text(encoding="utf-8"))
    fired = {case["alertname"] for test in tested["tests"] for case in test["alert_rule_test"] if case["exp_alerts"]}
    assert fired == {rule["alert"] for rule in rules}  # every alert has a case where it must fire


def test_rules_and_dashboard_name_only_exported_metrics() -> None:
    known = exported_names()
    assert {"livetag_consumer_group_lag", "livetag_dropped_frames_total", "livetag_end_to_end_latency_seconds_bucket",
            "livetag_model_info"} <= known
    for expression in rule_expressions() + dashboard_queries():
        assert METRIC.search(expression), expression
        assert unknown_metrics(expression, known) == set(), expression
    # and the check itself sees a wrong name
    assert unknown_metrics("rate(livetag_frames_total[5m])", known) == {"livetag_frames_total"}


def test_dashboard_queries_are_valid_promql(tmp_path: Path) -> None:
    """promtool parses each dashboard query (as a recording rule) after Grafana's variables are filled in."""
    queries = dashboard_queries()
    assert len(queries) >= 12
    rules = []
    for index, query in enumerate(queries):
        for variable, value in GRAFANA_VARIABLES.items():
            query = query.replace(variable, value)
        rules.append({"record": f"livetag:dashboard_query_{index}", "expr": query})
    path = tmp_path / "dashboard-queries.yaml"
    path.write_text(yaml.safe_dump({"groups": [{"name": "dashboard", "rules": rules}]}), encoding="utf-8")
    result = subprocess.run([_promtool(), "check", "rules", str(path)], capture_output=True, text=True, check=False)
    assert result.returncode == 0, result.stdout + result.stderr
    broken = tmp_path / "broken.yaml"
    broken.write_text(yaml.safe_dump({"groups": [{"name": "b", "rules": [{"record": "x:y", "expr": "sum(rate(x[5m])"}]}]}))
    assert subprocess.run([_promtool(), "check", "rules", str(broken)], capture_output=True, check=False).returncode != 0
