"""The upstream of the conformance suite's `test_trigger_tool_change` tool (2026-07-28
"Dynamic List Mutations"): a real REST endpoint behind a real toolgate. Each call toggles an
operation in the OpenAPI document the gateway serves (hooks.json) and asks the gateway to
reload (POST /admin/reload), so the tool list changes the way it does in production: by a
configuration change, not by a test hook inside the gateway.

Usage: python trigger.py <port> <hooks.json> <admin-url>
"""

import http.server
import json
import pathlib
import sys
import urllib.request

port, spec_path, admin = int(sys.argv[1]), pathlib.Path(sys.argv[2]), sys.argv[3]


def document(with_extra: bool) -> dict:
    paths = {
        "/test_trigger_tool_change": {
            "post": {
                "operationId": "test_trigger_tool_change",
                "summary": "Change the gateway's tool list (toggles hooks_extra and reloads).",
                "responses": {"200": {"description": "ok", "content": {"application/json": {"schema": {"type": "object"}}}}},
            }
        }
    }
    if with_extra:
        paths["/hooks_extra"] = {"get": {"operationId": "hooks_extra", "responses": {"200": {"description": "ok"}}}}
    return {"openapi": "3.0.3", "info": {"title": "Conformance hooks", "version": "1"}, "paths": paths}


def write(with_extra: bool) -> None:
    spec_path.write_text(json.dumps(document(with_extra)))


class Handler(http.server.BaseHTTPRequestHandler):
    extra = False

    def do_POST(self):
        length = int(self.headers.get("content-length") or 0)
        self.rfile.read(length)
        if self.path != "/test_trigger_tool_change":
            self.send_error(404)
            return
        Handler.extra = not Handler.extra
        write(Handler.extra)
        with urllib.request.urlopen(urllib.request.Request(admin, method="POST"), timeout=30) as r:
            report = json.loads(r.read())
        body = json.dumps({"reload": report["outcome"], "tools_changed": report["tools_changed"]}).encode()
        self.send_response(200)
        self.send_header("content-type", "application/json")
        self.send_header("content-length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def do_GET(self):
        body = b'{"ok": true}'
        self.send_response(200)
        self.send_header("content-type", "application/json")
        self.send_header("content-length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):
        pass


if __name__ == "__main__":
    if not spec_path.exists():
        write(False)
    http.server.ThreadingHTTPServer(("127.0.0.1", port), Handler).serve_forever()
