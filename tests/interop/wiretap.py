"""A recording pass-through proxy, so the suite can see which protocol era a client used.

Usage: python wiretap.py <listen-port> <upstream-port> <log-file>
Forwards every request to 127.0.0.1:<upstream-port> unchanged (the Host header names the
upstream) and appends one JSON line per request to <log-file>:
{"http": "POST", "version": <MCP-Protocol-Version header or null>, "rpc": <JSON-RPC method or null>}
plus, for `tools/call`, "tool", "args" (the arguments as sent: the compatibility judge
checks which clients send `null` for arguments they were not given) and "result":
{"isError", "structured"} (whether the answer carried structuredContent; "text", the first
text block, of an isError result) or {"error": code}.
"""

import http.client
import json
import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

LISTEN, UPSTREAM, LOG = int(sys.argv[1]), int(sys.argv[2]), sys.argv[3]
HOP = {"host", "connection", "keep-alive", "transfer-encoding", "content-length", "upgrade"}
lock = threading.Lock()


class Tap(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def relay(self):
        body = self.rfile.read(int(self.headers.get("content-length") or 0))
        try:
            message = json.loads(body) if body else None
            rpc = message.get("method")
        except (ValueError, AttributeError):
            message = rpc = None
        record = {"http": self.command, "version": self.headers.get("mcp-protocol-version"), "rpc": rpc}
        if rpc == "tools/call" and isinstance(message.get("params"), dict):
            record["tool"] = message["params"].get("name")
            record["args"] = message["params"].get("arguments")
        else:
            self.write(record)
        upstream = http.client.HTTPConnection("127.0.0.1", UPSTREAM, timeout=30)
        headers = {k: v for k, v in self.headers.items() if k.lower() not in HOP}
        upstream.request(self.command, self.path, body=body, headers=headers)
        answer = upstream.getresponse()
        self.send_response(answer.status)
        for k, v in answer.getheaders():
            if k.lower() not in HOP:
                self.send_header(k, v)
        if (answer.getheader("content-type") or "").startswith("text/event-stream"):
            # A notification stream stays open: relay each chunk as it comes, until either
            # side closes.
            upstream.sock.settimeout(None)
            self.send_header("transfer-encoding", "chunked")
            self.end_headers()
            seen = []
            try:
                while chunk := answer.read1(65536):
                    seen.append(chunk)
                    self.wfile.write(b"%x\r\n%s\r\n" % (len(chunk), chunk))
                    self.wfile.flush()
                self.wfile.write(b"0\r\n\r\n")
            except OSError:
                pass
            self.done(record, b"".join(seen))
            upstream.close()
            self.close_connection = True
            return
        payload = answer.read()
        self.send_header("content-length", str(len(payload)))
        self.end_headers()
        self.wfile.write(payload)
        upstream.close()
        self.done(record, payload)

    def write(self, record):
        with lock, open(LOG, "a") as log:
            log.write(json.dumps(record) + "\n")

    def done(self, record, payload):
        """Logs a tools/call once its answer is known (JSON body or SSE `data:` lines)."""
        if "tool" not in record:
            return
        texts = [payload]
        if payload.lstrip()[:1] != b"{":
            texts = [line[5:] for line in payload.splitlines() if line.startswith(b"data:")]
        for text in texts:
            try:
                answer = json.loads(text)
            except ValueError:
                continue
            if isinstance(answer, dict) and "result" in answer and isinstance(answer["result"], dict):
                result = answer["result"]
                record["result"] = {"isError": bool(result.get("isError")), "structured": "structuredContent" in result}
                if result.get("isError"):
                    texts = [c.get("text") for c in result.get("content") or [] if isinstance(c, dict) and c.get("text")]
                    record["result"]["text"] = (texts[0] if texts else "")[:300]
            elif isinstance(answer, dict) and isinstance(answer.get("error"), dict):
                record["result"] = {"error": answer["error"].get("code")}
        self.write(record)

    do_POST = do_GET = do_DELETE = relay

    def log_message(self, *args):
        pass


ThreadingHTTPServer(("127.0.0.1", LISTEN), Tap).serve_forever()
