"""Every Grafana panel queries metrics that backhaul.metrics exports, and every metric has a panel."""
from __future__ import annotations

import importlib.util
import json
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterator

import pytest
import yaml
from prometheus_client import REGISTRY
from prometheus_client.metrics import MetricWrapperBase

import backhaul.metrics
from program.roles import METRICS_PORTS

ROOT = Path(__file__).resolve().parents[2]
GRAFANA = ROOT / "deploy" / "grafana"
DASHBOARDS = sorted((GRAFANA / "dashboards").glob("*.json"))

# Series suffixes prometheus_client exports for each metric type.
SUFFIXES = {"counter": ("_total", "_created"), "gauge": ("",), "histogram": ("_bucket", "_sum", "_count", "_created")}
# Labels Prometheus adds when scraping, and the histogram bucket label.
SCRAPE_LABELS = {"job", "instance"}

FUNCTIONS = {
    # aggregation operators
    "sum", "min", "max", "avg", "group", "stddev", "stdvar", "count", "count_values", "bottomk", "topk",
    "quantile", "limitk", "limit_ratio",
    # functions
    "abs", "absent", "absent_over_time", "ceil", "changes", "clamp", "clamp_max", "clamp_min", "day_of_month",
    "day_of_week", "day_of_year", "days_in_month", "delta", "deriv", "exp", "floor", "histogram_avg",
    "histogram_count", "histogram_fraction", "histogram_quantile", "histogram_stddev", "histogram_stdvar",
    "histogram_sum", "holt_winters", "double_exponential_smoothing", "hour", "idelta", "increase", "irate",
    "label_join", "label_replace", "ln", "log2", "log10", "minute", "month", "predict_linear", "rate", "resets",
    "round", "scalar", "sgn", "sort", "sort_desc", "sort_by_label", "sort_by_label_desc", "sqrt", "time",
    "timestamp", "vector", "year", "avg_over_time", "min_over_time", "max_over_time", "sum_over_time",
    "count_over_time", "quantile_over_time", "stddev_over_time", "stdvar_over_time", "last_over_time",
    "present_over_time", "mad_over_time", "acos", "acosh", "asin", "asinh", "atan", "atanh", "cos", "cosh",
    "sin", "sinh", "tan", "tanh", "deg", "rad", "pi",
    # @ modifiers
    "start", "end",
}
KEYWORDS = {"and", "or", "unless", "bool", "offset", "inf", "nan", "group_left", "group_right"}

STRING = re.compile(r'"(?:[^"\\]|\\.)*"|\'(?:[^\'\\]|\\.)*\'|`[^`]*`')
MATCHERS = re.compile(r"\{([^{}]*)\}")
MATCHER_LABEL = re.compile(r"([a-zA-Z_][a-zA-Z0-9_]*)\s*(?:=~|!~|!=|=)")
CLAUSE = re.compile(r"\b(?:by|without|on|ignoring|group_left|group_right)\s*\(([^()]*)\)")
RANGE = re.compile(r"\[[^\[\]]*\]")
OFFSET = re.compile(r"\boffset\s+-?[0-9a-zA-Z]+")
VARIABLE = re.compile(r"\$\{[^}]*\}|\$\w+")
TOKEN = re.compile(r"(?<![\w.:])[a-zA-Z_:][a-zA-Z0-9_:]*")


@dataclass
class Query:
    """What one PromQL expression refers to."""
    metrics: set[str] = field(default_factory=set)
    labels: set[str] = field(default_factory=set)
    unknown_functions: set[str] = field(default_factory=set)


def parse(expr: str) -> Query:
    """Split a PromQL expression into the series names and the label names it uses."""
    query = Query()
    text = STRING.sub('""', expr)
    for body in MATCHERS.findall(text):
        query.labels.update(MATCHER_LABEL.findall(body))
    text = MATCHERS.sub(" ", text)
    for body in CLAUSE.findall(text):
        query.labels.update(name.strip() for name in body.split(",") if name.strip())
    text = CLAUSE.sub(" ", text)
    text = VARIABLE.sub(" ", RANGE.sub(" ", text))
    text = OFFSET.sub(" ", text)
    for match in TOKEN.finditer(text):
        name = match.group()
        called = text[match.end():].lstrip().startswith("(")
        if called:
            if name not in FUNCTIONS:
                query.unknown_functions.add(name)
        elif name not in KEYWORDS:
            query.metrics.add(name)
    return query


@dataclass(frozen=True)
class Exported:
    metric: str          # the name given in backhaul/metrics.py
    labels: frozenset[str]


def backhaul_metrics() -> list[MetricWrapperBase]:
    return [value for value in vars(backhaul.metrics).values() if isinstance(value, MetricWrapperBase)]


def exported_series() -> dict[str, Exported]:
    """Every series name the metrics in backhaul.metrics export -> the metric and its labels."""
    series: dict[str, Exported] = {}
    for metric in backhaul_metrics():
        labels = frozenset(metric._labelnames)
        for family in metric.describe():
            for suffix in SUFFIXES[family.type]:
                series[family.name + suffix] = Exported(family.name, labels)
    return series


def panels(items: list[dict[str, Any]]) -> Iterator[dict[str, Any]]:
    """Every panel, including those inside (collapsed) rows."""
    for panel in items:
        yield panel
        yield from panels(panel.get("panels", []))


def load(path: Path) -> dict[str, Any]:
    return json.loads(path.read_text())


def expressions(board: dict[str, Any]) -> Iterator[tuple[str, str]]:
    """(panel title, expr) for every query target of every panel."""
    for panel in panels(board["panels"]):
        for target in panel.get("targets", []):
            yield panel.get("title", "?"), target.get("expr", "")


def all_expressions() -> list[tuple[str, str, str]]:
    return [(path.name, title, expr) for path in DASHBOARDS for title, expr in expressions(load(path))]


SERIES = exported_series()


def test_metrics_are_registered() -> None:
    registered = {family.name for family in REGISTRY.collect()}
    names = {family.name for metric in backhaul_metrics() for family in metric.describe()}
    assert names, "backhaul.metrics defines no metric"
    assert names <= registered
    assert all(name.startswith("backhaul_") for name in names)


def test_no_device_label_on_any_metric() -> None:
    for metric in backhaul_metrics():
        for label in metric._labelnames:
            assert "device" not in label.lower(), f"{metric._name} has a per-device label {label!r}"


def test_three_dashboards_with_a_prometheus_datasource_variable() -> None:
    boards = [load(path) for path in DASHBOARDS]
    assert {board["title"] for board in boards} == {
        "Backhaul flow", "Backhaul delivery", "Backhaul keep-alive and API"}
    assert len({board["uid"] for board in boards}) == len(boards)
    for board in boards:
        assert board["schemaVersion"] >= 36
        variables = {v["name"]: v for v in board["templating"]["list"]}
        assert variables["datasource"]["type"] == "datasource"
        assert variables["datasource"]["query"] == "prometheus"
        for panel in panels(board["panels"]):
            if panel["type"] == "row":
                continue
            assert panel["datasource"]["uid"] == "${datasource}", panel["title"]
            assert panel["targets"], f"{board['title']}: panel {panel['title']!r} has no query"
            for target in panel["targets"]:
                assert target["expr"].strip(), f"{board['title']}: panel {panel['title']!r} has an empty query"


@pytest.mark.parametrize(("board", "title", "expr"), all_expressions())
def test_every_query_names_exported_metrics(board: str, title: str, expr: str) -> None:
    query = parse(expr)
    where = f"{board}: {title!r}: {expr}"
    assert query.metrics, f"no metric found in {where}"
    assert not query.unknown_functions, f"unknown functions {query.unknown_functions} in {where}"
    unknown = query.metrics - SERIES.keys()
    assert not unknown, f"{where} names {sorted(unknown)}, which backhaul.metrics does not export"
    allowed = set(SCRAPE_LABELS)
    for name in query.metrics:
        allowed |= SERIES[name].labels
        if name.endswith("_bucket"):
            allowed.add("le")
    assert query.labels <= allowed, f"{where} uses labels {sorted(query.labels - allowed)} its metrics lack"


def test_every_metric_has_a_panel() -> None:
    used = {SERIES[name].metric for _, _, expr in all_expressions() for name in parse(expr).metrics if name in SERIES}
    defined = {exported.metric for exported in SERIES.values()}
    assert not defined - used, f"metrics with no dashboard panel: {sorted(defined - used)}"


def test_parser_finds_metrics_not_labels_or_functions() -> None:
    query = parse('histogram_quantile(0.99, sum by (le, channel) '
                  '(rate(backhaul_delivery_request_seconds_bucket{channel=~"URL|BATCH_URL", outcome!="x"}[$__rate_interval])))')
    assert query.metrics == {"backhaul_delivery_request_seconds_bucket"}
    assert query.labels == {"le", "channel", "outcome"}
    query = parse("sum(rate(backhaul_frames_in_total[5m] offset 1h)) by (job) / ignoring(job) group_left "
                  "sum(backhaul_windows_open) > bool 1e3")
    assert query.metrics == {"backhaul_frames_in_total", "backhaul_windows_open"}
    assert query.labels == {"job"}
    assert not query.unknown_functions


def test_unknown_metrics_are_detected() -> None:
    assert parse('sum by (reason) (rate(backhaul_nope_total{reason="crc"}[5m]))').metrics - SERIES.keys() == {
        "backhaul_nope_total"}
    # A counter without _total and a histogram without _bucket are not what prometheus_client exports.
    assert parse("rate(backhaul_frames_in[5m])").metrics - SERIES.keys() == {"backhaul_frames_in"}
    assert parse("backhaul_e2e_latency_seconds").metrics - SERIES.keys() == {"backhaul_e2e_latency_seconds"}
    assert parse("rtae(backhaul_frames_in_total[5m])").unknown_functions == {"rtae"}


def test_dashboards_match_their_generator() -> None:
    spec = importlib.util.spec_from_file_location("build_dashboards", GRAFANA / "build_dashboards.py")
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    built = module.build()
    assert sorted(built) == [path.name for path in DASHBOARDS]
    for name, board in built.items():
        assert (GRAFANA / "dashboards" / name).read_text() == module.render(board), (
            f"{name} differs from build_dashboards.py: run python deploy/grafana/build_dashboards.py")


def test_provisioning_and_scrape_config() -> None:
    provider = yaml.safe_load((GRAFANA / "provisioning" / "dashboards" / "backhaul.yml").read_text())
    assert provider["providers"][0]["options"]["path"].endswith("deploy/grafana/dashboards")
    source = yaml.safe_load((GRAFANA / "provisioning" / "datasources" / "prometheus.yml").read_text())
    assert source["datasources"][0]["type"] == "prometheus"
    scrape = yaml.safe_load((ROOT / "deploy" / "prometheus" / "prometheus.yml").read_text())
    jobs = {job["job_name"]: job for job in scrape["scrape_configs"]}
    ports = {**METRICS_PORTS, "api": 8080}
    assert set(jobs) == set(ports)
    for role, port in ports.items():
        assert jobs[role]["scrape_interval"] == "5s"
        assert jobs[role]["static_configs"][0]["targets"] == [f"127.0.0.1:{port}"]
