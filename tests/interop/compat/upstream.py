"""The compatibility judge's upstream: one loopback HTTP server for every corpus document.

Usage: python upstream.py <port> <targets.json> <log-file>
<targets.json> maps target name -> OpenAPI document path; the gateway config gives target T
the base URL http://127.0.0.1:<port>/t/T. Every request is matched to T's operation (method
and path template) and answered with the simplest body valid for its first 2xx (else
`default`) response: JSON from the response schema (schemagen), an empty body for a
response without content, `ok` for a non-JSON media type; `{}` when nothing matches.
Appends one JSON line per request to <log-file>: {"target", "method", "path", "query",
"content_type", "body"} (body cut at 500 characters).
"""

import json
import pathlib
import re
import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import urlsplit

import yaml

from schemagen import generate

PORT, TARGETS, LOG = int(sys.argv[1]), sys.argv[2], sys.argv[3]
METHODS = {"get", "put", "post", "delete", "options", "head", "patch", "trace"}
lock = threading.Lock()
documents = {}


def load(target):
    """(document, [(method, regex, literal-length, operation)]) for a target, cached."""
    if target not in documents:
        path = json.loads(pathlib.Path(TARGETS).read_text()).get(target)
        if path is None:
            documents[target] = None
        else:
            text = pathlib.Path(path).read_text()
            doc = json.loads(text) if path.endswith(".json") else yaml.safe_load(text)
            routes = []
            for template, item in (doc.get("paths") or {}).items():
                if not isinstance(item, dict):
                    continue
                pattern = "".join("[^/]*" if part.startswith("{") else re.escape(part) for part in re.split(r"(\{[^}]*\})", template))
                literal = len(re.sub(r"\{[^}]*\}", "", template))
                for method, op in item.items():
                    if method in METHODS and isinstance(op, dict):
                        routes.append((method.upper(), re.compile(f"^{pattern}$"), literal, op))
            routes.sort(key=lambda r: -r[2])
            documents[target] = (doc, routes)
    return documents[target]


def answer_for(doc, op):
    """(status, content type or None, body bytes) for an operation's first success response."""
    responses = op.get("responses") or {}
    codes = sorted(c for c in map(str, responses) if c.startswith("2") and c[1:].isdigit())
    codes += [c for c in map(str, responses) if c.upper() == "2XX"] + [c for c in map(str, responses) if c == "default"]
    if not codes:
        return 200, "application/json", b"{}"
    code = codes[0]
    status = int(code) if code.isdigit() else 200
    response = responses.get(code) if code in responses else responses.get(int(code)) if code.isdigit() else None
    from schemagen import resolve

    response, _ = resolve(response or {}, doc)
    if status == 204:
        return 204, None, b""
    if "swagger" in doc:  # 2.0: one schema, media types from `produces`
        schema = response.get("schema")
        if schema is None:
            return status, None, b""
        produces = op.get("produces") or doc.get("produces") or ["application/json"]
        media = next((m for m in produces if "json" in m), None)
        if media is None:
            return status, produces[0], b"ok"
        return status, media, json.dumps(generate(schema, doc)).encode()
    content = response.get("content") or {}
    if not content:
        return status, None, b""
    media = next((m for m in content if "json" in m or m == "*/*"), None)
    if media is None:
        first = next(iter(content))
        return status, first if "*" not in first else "text/plain", b"ok"
    schema = (content[media] or {}).get("schema")
    body = generate(schema, doc) if schema is not None else {}
    return status, "application/json" if media == "*/*" else media, json.dumps(body).encode()


class Upstream(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def handle_any(self):
        body = self.rfile.read(int(self.headers.get("content-length") or 0))
        url = urlsplit(self.path)
        parts = url.path.split("/", 3)
        target = parts[2] if len(parts) > 2 and parts[1] == "t" else None
        rest = "/" + parts[3] if len(parts) > 3 else "/"
        with lock, open(LOG, "a") as log:
            log.write(json.dumps({"target": target, "method": self.command, "path": rest, "query": url.query,
                                  "content_type": self.headers.get("content-type"),
                                  "body": body.decode("utf-8", "replace")[:500]}) + "\n")
        status, media, payload = 200, "application/json", b"{}"
        loaded = load(target) if target else None
        if loaded:
            doc, routes = loaded
            for method, pattern, _, op in routes:
                if method == self.command and pattern.match(rest):
                    try:
                        status, media, payload = answer_for(doc, op)
                    except Exception as e:  # a schema the generator cannot follow: say so
                        status, media, payload = 200, "application/json", json.dumps({"upstream_error": str(e)}).encode()
                    break
        if self.command == "HEAD":
            payload = b""
        self.send_response(status)
        if media:
            self.send_header("content-type", media)
        self.send_header("content-length", str(len(payload)))
        self.end_headers()
        self.wfile.write(payload)

    do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = do_HEAD = do_OPTIONS = do_TRACE = handle_any

    def log_message(self, *args):
        pass


ThreadingHTTPServer(("127.0.0.1", PORT), Upstream).serve_forever()
