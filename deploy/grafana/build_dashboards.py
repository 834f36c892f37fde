"""Writes the Grafana dashboards in deploy/grafana/dashboards/ as JSON.

Edit the panels here, then run `python deploy/grafana/build_dashboards.py`;
tests/unit/test_dashboards.py checks that the JSON files match this script and
that every query names metrics that backhaul.metrics exports.
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any

DASHBOARDS_DIR = Path(__file__).resolve().parent / "dashboards"
DATASOURCE = {"type": "prometheus", "uid": "${datasource}"}
RATE = "$__rate_interval"

Panel = dict[str, Any]


def rate(metric: str, by: str = "", matchers: str = "") -> str:
    """Per-second rate of a counter summed over all processes, optionally split by labels."""
    grouping = f" by ({by})" if by else ""
    return f"sum{grouping} (rate({metric}{matchers}[{RATE}]))"


def quantile(q: float, histogram: str, by: str = "") -> str:
    """histogram_quantile over the _bucket series of a histogram, summed over all processes."""
    labels = f"le, {by}" if by else "le"
    return f"histogram_quantile({q}, sum by ({labels}) (rate({histogram}_bucket[{RATE}])))"


def target(expr: str, legend: str = "", ref: str = "A") -> dict[str, Any]:
    return {"refId": ref, "datasource": DATASOURCE, "expr": expr, "legendFormat": legend or "__auto", "range": True}


def targets(*pairs: tuple[str, str]) -> list[dict[str, Any]]:
    return [target(expr, legend, chr(ord("A") + i)) for i, (expr, legend) in enumerate(pairs)]


def timeseries(title: str, unit: str, queries: list[dict[str, Any]], description: str = "",
               stacked: bool = False) -> Panel:
    custom: dict[str, Any] = {"drawStyle": "line", "lineWidth": 1, "fillOpacity": 10, "showPoints": "never",
                              "spanNulls": False}
    if stacked:
        custom["stacking"] = {"mode": "normal", "group": "A"}
    return {
        "type": "timeseries",
        "title": title,
        "description": description,
        "datasource": DATASOURCE,
        "fieldConfig": {"defaults": {"unit": unit, "min": 0, "custom": custom}, "overrides": []},
        "options": {
            "legend": {"displayMode": "list", "placement": "bottom", "showLegend": True},
            "tooltip": {"mode": "multi", "sort": "desc"},
        },
        "targets": queries,
    }


def stat(title: str, unit: str, expr: str, description: str = "") -> Panel:
    return {
        "type": "stat",
        "title": title,
        "description": description,
        "datasource": DATASOURCE,
        "fieldConfig": {"defaults": {"unit": unit, "decimals": 1}, "overrides": []},
        "options": {
            "reduceOptions": {"calcs": ["lastNotNull"], "fields": "", "values": False},
            "colorMode": "value",
            "graphMode": "area",
            "justifyMode": "auto",
            "textMode": "auto",
        },
        "targets": [target(expr, title)],
    }


def row(title: str, panels: list[Panel], collapsed: bool = False) -> list[Panel]:
    """A row followed by its panels (or holding them, when collapsed), laid out later by layout()."""
    head: Panel = {"type": "row", "title": title, "collapsed": collapsed, "panels": []}
    if collapsed:
        head["panels"] = panels
        return [head]
    return [head, *panels]


def layout(panels: list[Panel]) -> list[Panel]:
    """Give every panel an id and a grid position: stats 6 wide, graphs 12 wide, rows full width."""
    next_id = 1
    x = y = row_height = 0

    def place(panel: Panel) -> None:
        nonlocal next_id, x, y, row_height
        panel["id"] = next_id
        next_id += 1
        if panel["type"] == "row":
            if x:
                x, y = 0, y + row_height
            panel["gridPos"] = {"h": 1, "w": 24, "x": 0, "y": y}
            y += 1
            row_height = 0
            below = y
            for inner in panel["panels"]:  # a collapsed row: its panels take no room until expanded
                place(inner)
            x, y, row_height = 0, below, 0
            return
        width, height = (6, 4) if panel["type"] == "stat" else (12, 8)
        if x + width > 24:
            x, y = 0, y + row_height
            row_height = 0
        panel["gridPos"] = {"h": height, "w": width, "x": x, "y": y}
        x += width
        row_height = max(row_height, height)

    for panel in panels:
        place(panel)
    return panels


def dashboard(uid: str, title: str, description: str, panels: list[Panel]) -> dict[str, Any]:
    return {
        "uid": uid,
        "title": title,
        "description": description,
        "tags": ["backhaul"],
        "schemaVersion": 39,
        "version": 1,
        "editable": True,
        "graphTooltip": 1,
        "refresh": "5s",
        "time": {"from": "now-15m", "to": "now"},
        "timezone": "browser",
        "annotations": {"list": []},
        "links": [{"type": "dashboards", "tags": ["backhaul"], "title": "Backhaul", "asDropdown": True}],
        "templating": {"list": [{
            "name": "datasource",
            "label": "Data source",
            "type": "datasource",
            "query": "prometheus",
            "current": {},
            "hide": 0,
            "refresh": 1,
            "regex": "",
            "options": [],
        }]},
        "panels": layout(panels),
    }


def flow() -> dict[str, Any]:
    return dashboard("backhaul-flow", "Backhaul flow", "Frames to messages to routed deliveries, and Kafka lag.", [
        stat("Frames in/s", "cps", rate("backhaul_frames_in_total")),
        stat("Messages/s", "cps", rate("backhaul_messages_total")),
        stat("Rejected frames/s", "cps", rate("backhaul_frames_rejected_total")),
        stat("Consumer lag (records)", "short", "sum(backhaul_consumer_lag)"),
        *row("Ingest", [
            timeseries("Frames in and messages", "cps", targets(
                (rate("backhaul_frames_in_total"), "frames in"),
                (rate("backhaul_messages_total", "kind"), "messages {{kind}}"),
            )),
            timeseries("Rejected frames by reason", "cps", targets(
                (rate("backhaul_frames_rejected_total", "reason"), "{{reason}}"),
            ), "Every refused frame also goes to the frames.rejected topic with this reason.", stacked=True),
            timeseries("Duplicate frames", "cps", targets(
                (rate("backhaul_duplicate_frames_total", "source"), "{{source}}"),
            ), "Frames from other stations merged into an open message window."),
            timeseries("Late, trashed and over-quota", "cps", targets(
                (rate("backhaul_late_frames_total"), "late frames"),
                (rate("backhaul_trashed_frames_total"), "trashed frames"),
                (rate("backhaul_over_quota_messages_total"), "over-quota messages"),
            )),
            timeseries("Late frame lateness", "s", targets(
                (quantile(0.5, "backhaul_late_frame_lateness_seconds"), "p50"),
                (quantile(0.99, "backhaul_late_frame_lateness_seconds"), "p99"),
            ), "How long after its window closed a late frame arrived."),
        ]),
        *row("DATA_ADVANCED windows", [
            timeseries("Windows open", "short", targets(
                ("sum(backhaul_windows_open)", "open windows"),
            )),
            timeseries("DATA_ADVANCED emitted", "cps", targets(
                (rate("backhaul_advanced_emitted_total"), "emitted"),
            )),
            timeseries("DATA_ADVANCED lateness after deadline", "s", targets(
                (quantile(0.5, "backhaul_advanced_lateness_seconds"), "p50"),
                (quantile(0.95, "backhaul_advanced_lateness_seconds"), "p95"),
                (quantile(0.99, "backhaul_advanced_lateness_seconds"), "p99"),
            )),
        ]),
        *row("Router", [
            timeseries("Routed deliveries", "cps", targets(
                (rate("backhaul_routed_deliveries_total", "type, channel"), "{{type}} {{channel}}"),
            ), stacked=True),
            timeseries("Route errors by reason", "cps", targets(
                (rate("backhaul_route_errors_total", "reason"), "{{reason}}"),
            )),
        ]),
        *row("Kafka", [
            timeseries("Consumer lag per topic and partition", "short", targets(
                ("max by (group, topic, partition) (backhaul_consumer_lag)", "{{group}} {{topic}}[{{partition}}]"),
            )),
            timeseries("Consumer lag per group", "short", targets(
                ("sum by (group) (backhaul_consumer_lag)", "{{group}}"),
            )),
            timeseries("Dead letters by stage", "cps", targets(
                (rate("backhaul_dead_letters_total", "stage"), "{{stage}}"),
            ), "Records a stage could not handle, moved to the dead-letters topic with their error "
               "(each also logged at ERROR). Anything above zero needs a look.", stacked=True),
        ]),
        *row("Kafka and PostgreSQL reachability", [
            timeseries("Processes reaching Kafka and PostgreSQL", "short", targets(
                ("sum by (dependency) (backhaul_infrastructure_up)", "{{dependency}} up"),
                ("count by (dependency) (backhaul_infrastructure_up == 0)", "{{dependency}} unreachable"),
            ), "Every worker process checks every 2 s that it reaches Kafka (and PostgreSQL where its roles "
               "use it). An outage shows as processes moving from 'up' to 'unreachable'; they wait and "
               "resume by themselves."),
            timeseries("Steps waiting for Kafka or PostgreSQL", "cps", targets(
                (rate("backhaul_infrastructure_errors_total", "stage, dependency"), "{{stage}} {{dependency}}"),
            ), "Steps that failed because a dependency was unreachable, by stage; each is tried again "
               "(0.5 s doubling to 30 s), nothing is dead-lettered or skipped.", stacked=True),
        ]),
        *row("Ingest internals", [
            timeseries("Ingest batch size", "short", targets(
                (f"{rate('backhaul_ingest_batch_size_sum')} / {rate('backhaul_ingest_batch_size_count')}", "mean"),
                (quantile(0.99, "backhaul_ingest_batch_size"), "p99"),
            )),
            timeseries("Device state records restored", "cps", targets(
                (rate("backhaul_state_records_restored_total"), "restored"),
            ), "Device state read back from the changelog after a restart or rebalance."),
        ], collapsed=True),
    ])


def delivery() -> dict[str, Any]:
    return dashboard("backhaul-delivery", "Backhaul delivery", "Callback deliveries, latency, retries, circuits.", [
        stat("Deliveries/s", "cps", rate("backhaul_deliveries_total")),
        stat("End to end p99", "s", quantile(0.99, "backhaul_e2e_latency_seconds")),
        stat("Dead callbacks (range)", "short", "sum(increase(backhaul_delivery_dead_total[$__range]))"),
        stat("Retries waiting", "short", "sum(backhaul_retries_waiting)"),
        *row("Outcomes", [
            timeseries("Deliveries by outcome", "cps", targets(
                (rate("backhaul_deliveries_total", "outcome"), "{{outcome}}"),
            ), stacked=True),
            timeseries("Deliveries by channel", "cps", targets(
                (rate("backhaul_deliveries_total", "channel"), "{{channel}}"),
            ), stacked=True),
        ]),
        *row("Latency", [
            timeseries("Request latency by channel", "s", targets(
                (quantile(0.5, "backhaul_delivery_request_seconds", "channel"), "p50 {{channel}}"),
                (quantile(0.95, "backhaul_delivery_request_seconds", "channel"), "p95 {{channel}}"),
                (quantile(0.99, "backhaul_delivery_request_seconds", "channel"), "p99 {{channel}}"),
            ), "Time from sending the request to the customer's answer."),
            timeseries("End to end latency (first frame to callback answer)", "s", targets(
                (quantile(0.5, "backhaul_e2e_latency_seconds", "type"), "p50 {{type}}"),
                (quantile(0.99, "backhaul_e2e_latency_seconds", "type"), "p99 {{type}}"),
            )),
        ]),
        *row("Retries and failures", [
            timeseries("Retries scheduled", "cps", targets(
                (rate("backhaul_delivery_retries_total", "channel"), "{{channel}}"),
            )),
            timeseries("Deliveries parked without a try, by why", "cps", targets(
                (rate("backhaul_deliveries_parked_total", "reason"), "{{reason}}"),
            ), "Parked in the retry store untried: rate limited (the endpoint's queue would drain slowly), "
               "circuit open, or behind a recovered endpoint's backlog."),
            timeseries("Dead callbacks (retries exhausted)", "cps", targets(
                (rate("backhaul_delivery_dead_total", "channel"), "{{channel}}"),
            )),
            timeseries("Circuit breakers by state", "short", targets(
                ("sum by (state) (backhaul_circuits)", "{{state}}"),
            )),
            timeseries("In flight and waiting", "short", targets(
                ("sum(backhaul_deliveries_in_flight)", "in flight"),
                ("sum(backhaul_retries_waiting)", "retries waiting"),
            )),
            timeseries("Deliveries read again, not sent again", "cps", targets(
                (rate("backhaul_delivery_copies_skipped_total"), "copies skipped"),
            ), "A delivery read a second time from Kafka (a rebalance after an outage, a record published "
               "twice upstream) that this worker had already taken: it is not sent twice."),
        ]),
        *row("Downlinks", [
            timeseries("Downlinks by infoCode", "cps", targets(
                (rate("backhaul_downlinks_total", "info_code"), "{{info_code}}"),
            ), "BIDIR outcomes as reported in the ACKNOWLEDGE event.", stacked=True),
        ]),
    ])


def keepalive_and_api() -> dict[str, Any]:
    return dashboard("backhaul-keepalive-api", "Backhaul keep-alive and API",
                     "Device events, keep-alive deadlines, REST API, configuration propagation, store.", [
        stat("Device events/s", "cps", rate("backhaul_device_events_total")),
        stat("Keep-alive deadlines", "short", "sum(backhaul_keepalive_deadlines)"),
        stat("API requests/s", "reqps", rate("backhaul_api_requests_total")),
        stat("API 429/s", "reqps", rate("backhaul_api_rate_limited_total")),
        *row("Keep-alive", [
            timeseries("Device events by type", "cps", targets(
                (rate("backhaul_device_events_total", "type"), "{{type}}"),
            ), "Keep-alive breaches (ERROR) and restored events, and the other device events, by type."),
            timeseries("Keep-alive deadlines tracked", "short", targets(
                ("sum(backhaul_keepalive_deadlines)", "deadlines"),
            )),
        ]),
        *row("API", [
            timeseries("API requests by status", "reqps", targets(
                (rate("backhaul_api_requests_total", "status"), "{{status}}"),
            ), stacked=True),
            timeseries("API requests by route", "reqps", targets(
                (rate("backhaul_api_requests_total", "method, route"), "{{method}} {{route}}"),
            )),
            timeseries("API latency", "s", targets(
                (quantile(0.5, "backhaul_api_request_seconds"), "p50"),
                (quantile(0.95, "backhaul_api_request_seconds"), "p95"),
                (quantile(0.99, "backhaul_api_request_seconds"), "p99"),
            )),
            timeseries("API p99 latency by route", "s", targets(
                (quantile(0.99, "backhaul_api_request_seconds", "method, route"), "{{method}} {{route}}"),
            )),
            timeseries("API 429 by route", "reqps", targets(
                (rate("backhaul_api_rate_limited_total", "route"), "{{route}}"),
            )),
            timeseries("Failed logins and lockouts", "cps", targets(
                (rate("backhaul_api_login_failures_total"), "failed logins"),
                (rate("backhaul_api_login_lockouts_total", "scope"), "lockouts ({{scope}})"),
            ), "Wrong secrets and unknown logins; locks of a login or a client address after too many."),
            timeseries("Locked logins and addresses", "short", targets(
                ("sum by (scope) (backhaul_api_login_locked)", "{{scope}}"),
            ), "Logins and client addresses locked now (their requests are answered 429)."),
        ]),
        *row("Configuration and store", [
            timeseries("Configuration propagation latency", "s", targets(
                (quantile(0.5, "backhaul_config_propagation_seconds"), "p50"),
                (quantile(0.99, "backhaul_config_propagation_seconds"), "p99"),
            ), "From the database change to the worker's local view."),
            timeseries("Configuration records applied", "cps", targets(
                (rate("backhaul_config_records_total", "entity"), "{{entity}}"),
            )),
            timeseries("Store batch time", "s", targets(
                (quantile(0.5, "backhaul_store_batch_seconds"), "p50"),
                (quantile(0.99, "backhaul_store_batch_seconds"), "p99"),
            )),
            timeseries("Rows stored by table", "cps", targets(
                (rate("backhaul_stored_rows_total", "table"), "{{table}}"),
            ), stacked=True),
        ]),
    ])


def build() -> dict[str, dict[str, Any]]:
    """File name -> dashboard."""
    return {
        "backhaul-flow.json": flow(),
        "backhaul-delivery.json": delivery(),
        "backhaul-keepalive-api.json": keepalive_and_api(),
    }


def render(board: dict[str, Any]) -> str:
    return json.dumps(board, indent=2) + "\n"


def main() -> None:
    DASHBOARDS_DIR.mkdir(parents=True, exist_ok=True)
    for name, board in build().items():
        (DASHBOARDS_DIR / name).write_text(render(board))
        print(f"wrote {DASHBOARDS_DIR / name}")


if __name__ == "__main__":
    main()
