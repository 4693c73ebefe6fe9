"""`/metrics` on the app's server: the check metrics (quadrant.telemetry) in Prometheus' text format.

An ASGI middleware rather than a Gradio route, so that it answers before Gradio's login: a Prometheus scraper
has no session, and the metrics hold counts by model, quadrant and error kind only, nothing about a study or a
user. Serve the app beyond this machine behind a proxy that limits who may scrape it, as for the app itself.
"""

from __future__ import annotations

from quadrant.telemetry import telemetry

PATH = "/metrics"


class MetricsEndpoint:
    """Answers GET /metrics; passes every other request on."""

    def __init__(self, app):
        self.app = app

    async def __call__(self, scope, receive, send):
        if scope["type"] == "http" and scope.get("path", "").rstrip("/") == PATH:
            body, content_type = telemetry().exposition()
            await send({"type": "http.response.start", "status": 200,
                        "headers": [(b"content-type", content_type.encode()),
                                    (b"content-length", str(len(body)).encode())]})
            await send({"type": "http.response.body", "body": body})
            return
        await self.app(scope, receive, send)
