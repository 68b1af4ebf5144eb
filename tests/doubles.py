"""Helpers for the test doubles of network services (HTTP servers on loopback that stand in for an LLM endpoint)."""
from __future__ import annotations

import json
from http.server import BaseHTTPRequestHandler


def send_json(handler: BaseHTTPRequestHandler, status: int, payload: dict, *, headers: dict | None = None) -> None:
    """Answer one request with a JSON body, as an OpenAI-compatible server does."""
    data = json.dumps(payload).encode()
    handler.send_response(status)
    for name, value in (headers or {}).items():
        handler.send_header(name, value)
    handler.send_header("Content-Type", "application/json")
    handler.send_header("Content-Length", str(len(data)))
    handler.end_headers()
    handler.wfile.write(data)
