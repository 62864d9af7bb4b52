"""The alert rules and the Grafana dashboard name only metrics and labels the services serve.

A renamed metric or label would otherwise silently turn an alert into one that never fires.
"""

from __future__ import annotations

import dataclasses
import json
import re
from pathlib import Path

import yaml
from prometheus_client import CollectorRegistry

from scicat_schemas.runtime.consumer import ConsumerMetrics

ROOT = Path(__file__).resolve().parents[1]
ALERTS = yaml.safe_load((ROOT / "deploy" / "prometheus" / "alerts.yaml").read_text())
DASHBOARD = json.loads((ROOT / "deploy" / "grafana" / "scicat-pipeline.json").read_text())
ADDED_BY_PROMETHEUS = {"job", "instance", "le"}
SUFFIXES = {"counter": ("_total",), "histogram": ("_bucket", "_sum", "_count"), "gauge": ("",)}


def _served() -> dict[str, set[str]]:
    """Every series name the shared consumer metrics produce, with the labels it carries."""
    registry = CollectorRegistry()
    metrics = ConsumerMetrics(registry)
    served: dict[str, set[str]] = {}
    every = [getattr(metrics, f.name) for f in dataclasses.fields(metrics) if f.name != "registry"]
    for metric in every:
        for family in metric.describe():
            for suffix in SUFFIXES[family.type]:
                served[family.name + suffix] = set(metric._labelnames)
    return served


def _expressions() -> list[str]:
    rules = [rule["expr"] for group in ALERTS["groups"] for rule in group["rules"]]
    panels = [target["expr"] for panel in DASHBOARD["panels"] for target in panel["targets"]]
    return rules + panels


def test_every_metric_in_alerts_and_dashboard_is_served() -> None:
    served = _served()
    used = {name for expr in _expressions() for name in re.findall(r"\bscicat_\w+", expr)}
    assert used, "no metric found: the test reads the files wrongly"
    assert used <= served.keys(), f"not served: {sorted(used - served.keys())}"


def test_every_grouping_label_exists_on_the_metric_it_groups() -> None:
    served = _served()
    for expr in _expressions():
        [metric] = set(re.findall(r"\bscicat_\w+", expr))
        for group in re.findall(r"by \(([^)]*)\)", expr):
            labels = {label.strip() for label in group.split(",")}
            assert labels <= served[metric] | ADDED_BY_PROMETHEUS, f"{expr}: {labels}"


def test_every_alert_says_how_bad_and_what_to_do() -> None:
    for group in ALERTS["groups"]:
        for rule in group["rules"]:
            assert rule["labels"]["severity"] in {"warning", "critical"}
            assert rule["annotations"]["summary"] and rule["annotations"]["description"]


def test_dashboard_panels_have_unique_ids_and_use_the_datasource_variable() -> None:
    ids = [panel["id"] for panel in DASHBOARD["panels"]]
    assert len(ids) == len(set(ids))
    assert all(p["datasource"]["uid"] == "${datasource}" for p in DASHBOARD["panels"])
