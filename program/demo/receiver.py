"""A customer's server for the demo: takes every callback and shows them arriving.

    POST|GET|PUT /callbacks/{name}   record a callback (200; a BIDIR answer when asked)
    GET /                            a page listing the latest callbacks, refreshed every 2 s
    GET /stats                       counts as JSON
    GET /metrics                     the process's Prometheus metrics

A request whose query has `downlink=<16 hex>` and whose body says `"ack": true`
is answered the BIDIR way: {"<device>": {"downlinkData": "<16 hex>"}}.
"""
from __future__ import annotations

import collections
import html
import time

import orjson
from aiohttp import web
from prometheus_client.aiohttp import make_aiohttp_handler

KEEP = 200


class Receiver:
    def __init__(self) -> None:
        self.latest: collections.deque = collections.deque(maxlen=KEEP)
        self.counts: collections.Counter = collections.Counter()
        self.started = time.time()

    async def callback(self, request: web.Request) -> web.Response:
        name = request.match_info["name"]
        body = await request.read()
        text = body.decode("utf-8", "replace")
        self.counts[name] += 1
        self.latest.appendleft((time.time(), name, request.method, request.path_qs, text[:500]))
        downlink = request.query.get("downlink")
        if downlink and body:
            try:
                msg = orjson.loads(body)
            except orjson.JSONDecodeError:
                msg = {}
            if isinstance(msg, dict) and msg.get("ack") in (True, "true") and msg.get("device"):
                return web.json_response({msg["device"]: {"downlinkData": downlink}})
        return web.Response(text="ok")

    async def stats(self, request: web.Request) -> web.Response:
        total = sum(self.counts.values())
        return web.json_response({"total": total, "byName": dict(self.counts),
                                  "perSecond": round(total / max(1e-9, time.time() - self.started), 2)})

    async def page(self, request: web.Request) -> web.Response:
        rows = "".join(
            f"<tr><td>{time.strftime('%H:%M:%S', time.localtime(t))}</td><td>{html.escape(n)}</td>"
            f"<td>{m}</td><td><code>{html.escape(p)}</code></td><td><code>{html.escape(b)}</code></td></tr>"
            for t, n, m, p, b in list(self.latest)[:50])
        counts = ", ".join(f"{html.escape(k)}: {v}" for k, v in sorted(self.counts.items())) or "none yet"
        page = f"""<!doctype html><html><head><meta charset="utf-8"><meta http-equiv="refresh" content="2">
<title>Backhaul demo receiver</title><style>body{{font-family:sans-serif;margin:2em}}td{{padding:2px 8px;
border-bottom:1px solid #ddd;font-size:13px}}code{{word-break:break-all}}</style></head><body>
<h1>Backhaul demo receiver</h1><p>Callbacks received: <b>{sum(self.counts.values())}</b> ({counts})</p>
<table><tr><th>time</th><th>callback</th><th>method</th><th>path</th><th>body</th></tr>{rows}</table>
</body></html>"""
        return web.Response(text=page, content_type="text/html")


def create_app() -> web.Application:
    receiver = Receiver()
    app = web.Application()
    app["receiver"] = receiver
    app.router.add_get("/", receiver.page)
    app.router.add_get("/stats", receiver.stats)
    app.router.add_get("/metrics", make_aiohttp_handler())
    app.router.add_route("*", "/callbacks/{name}", receiver.callback)
    return app
