"""The benchmark's outputs: a table for the terminal and a JSON file."""
from __future__ import annotations

from pathlib import Path

import orjson


def _fmt(v, unit: str = "") -> str:
    if v is None:
        return "-"
    if isinstance(v, float) and v >= 100:
        v = round(v)
    return f"{v:,}{unit}" if isinstance(v, (int, float)) else f"{v}{unit}"


def _step_rows(s: dict) -> list[tuple[str, str]]:
    lat, late, acc = s["latencyMs"], s["advancedLatenessMs"], s["accounting"]
    cpu = s["cpu"]
    rows = [
        ("offered", f"{_fmt(s['offered']['framesPerS'])} frames/s, {_fmt(s['offered']['messagesPerS'])} messages/s "
                    f"({s['sent']['framesPerMessage']} frames/message, {s['sent']['seconds']} s)"),
        ("end to end", f"{_fmt(s['throughput']['framesPerS'])} frames/s, {_fmt(s['throughput']['messagesPerS'])} "
                       f"messages/s, {_fmt(s['throughput']['deliveriesPerS'])} deliveries/s"),
        ("first frame -> DATA", f"p50 {_fmt(lat['p50'])} ms, p95 {_fmt(lat['p95'])} ms, p99 {_fmt(lat['p99'])} ms, "
                                f"max {_fmt(lat['max'])} ms"),
        ("DATA_ADVANCED late", f"p50 {_fmt(late['p50'])} ms, p95 {_fmt(late['p95'])} ms, p99 {_fmt(late['p99'])} ms "
                               f"after the deadline"),
        ("messages", f"{_fmt(acc['sent'])} sent: DATA {_fmt(acc['data']['delivered'])} delivered / "
                     f"{_fmt(acc['data']['lost'])} lost, DATA_ADVANCED {_fmt(acc['advanced']['delivered'])} / "
                     f"{_fmt(acc['advanced']['lost'])}"),
        ("loss, duplicates", f"{acc['lostMessages']} lost messages "
                             f"({s['sent']['unregisteredMessages']} from unregistered devices), "
                             f"{acc['duplicates']} duplicate callbacks, {acc['unmatched']} unmatched"),
        ("CPU during load (cores)", ", ".join(f"{k} {_fmt(v)}" for k, v in cpu["load"]["cores"].items())
         + f"; machine {_fmt(cpu['load']['machineBusyCores'])} of {cpu['load']['machineCores']}"),
        ("parked untried", ", ".join(f"{k} {_fmt(v)}" for k, v in s.get("parked", {}).items()) or "none"),
        ("max lag (records)", ", ".join(f"{g} {_fmt(v)}" for g, v in s.get("lag", {}).get("max", {}).items())
         or "-"),
        ("CPU ms per message", ", ".join(f"{k} {_fmt(v)}" for k, v in cpu["cpuMsPerMessage"].items())
         + " (whole step)"),
    ]
    return rows


def format_table(result: dict) -> str:
    """A plain-text report of a run or of a step load."""
    rows: list[tuple[str, str]] = []
    summary = result["summary"]
    if result["mode"] == "find-max":
        lines = [f"{'step':>4}  {'msg/s':>7}  {'frames/s':>9}  {'p50 ms':>7}  {'p99 ms':>7}  {'lost':>5}  {'parked':>7}  verdict"
                 f"   (latency after a {result['steps'][0]['warmupS']:.0f} s warm-up)"]
        for i, s in enumerate(result["steps"], 1):
            lat = s["steadyLatencyMs"]
            lines.append(f"{i:>4}  {_fmt(s['offered']['messagesPerS']):>7}  {_fmt(s['offered']['framesPerS']):>9}  "
                         f"{_fmt(lat['p50']):>7}  {_fmt(lat['p99']):>7}  "
                         f"{s['accounting']['lostMessages']:>5}  {_fmt(sum(s.get('parked', {}).values())):>7}  "
                         f"{'overload' if 'saturation' in s else 'ok' if s['sustainable'] else 'over'}")
        table = "\n".join(lines)
        best = summary.get("maxSustainable")
        rows.append(("highest sustainable", "none" if not best else
                     f"{_fmt(best['framesPerS'])} frames/s ({_fmt(best['messagesPerS'])} messages/s), "
                     f"p99 {_fmt(best['p99Ms'])} ms"))
        sat = summary.get("saturation")
        if sat:
            rows.append(("overloaded", f"offered {_fmt(sat['offeredMessagesPerS'])} messages/s: "
                                       f"{_fmt(sat['dataPerSWhileLoaded'])} DATA callbacks/s while loaded, "
                                       f"{sat['ratio']:.0%} of the sustainable {_fmt(sat['sustainableMessagesPerS'])}"
                                       f"; backlog {'drained' if sat['drained'] else 'NOT drained (messages lost)'} "
                                       f"{sat['drainS']} s after the last frame: "
                                       f"{'holds' if sat['holds'] else 'collapses'}"))
    else:
        table = ""
        rows.extend(_step_rows(result["steps"][0]))
    if result.get("backgroundBusyCores") is not None:
        rows.append(("machine before load", f"{result['backgroundBusyCores']} busy cores (idle pipeline, Kafka, "
                                            f"PostgreSQL and whatever else runs)"))
    ceil = result.get("ceilings") or {}
    if ceil.get("kafka"):
        rows.append(("raw aiokafka ceiling", f"{_fmt(ceil['kafka']['framesPerS'])} frames/s produce->consume "
                                             f"(produce alone {_fmt(ceil['kafka']['produceFramesPerS'])})"))
    if ceil.get("http"):
        rows.append(("raw aiohttp ceiling", f"{_fmt(ceil['http']['requestsPerS'])} requests/s "
                                            f"({ceil['http']['concurrency']} connections)"))
    if summary.get("ratioToKafkaCeiling") is not None:
        rows.append(("ratio to ceiling", f"{summary['ratioToKafkaCeiling']:.1%} of the raw aiokafka frames/s"))
    width = max(len(k) for k, _ in rows)
    body = "\n".join(f"{k:<{width}}  {v}" for k, v in rows)
    head = (f"backhaul bench  ({result['mode']}; {result['options']['stations']} stations, "
            f"{result['options']['devices']} devices, up to {result['options']['stationsPerMessage']} stations/message, "
            f"workers {' | '.join(result['layout'])}, receiver {result['receiver']})")
    return "\n".join(x for x in (head, "-" * len(head), table, body) if x)


def print_rates(figures: dict[str, float], messages: int, note: str, unit: str = "messages/s") -> None:
    """The channel benches' table: each run's rate beside the raw client's, then what they ran against."""
    width = max((len(name) for name in figures), default=0) + 2
    print(f"\n{'':<{width}} {'messages':>9} {unit:>11}")
    for name, rate in figures.items():
        print(f"{name:<{width}} {messages:>9} {rate:>11,.0f}")
    print(f"({note})")


def write_json(result: dict, path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(orjson.dumps(result, option=orjson.OPT_INDENT_2))
    return path
