"""A recording pass-through proxy, so the suite can see which protocol era a client used.

Usage: python wiretap.py <listen-port> <upstream-port> <log-file>
Forwards every request to 127.0.0.1:<upstream-port> unchanged (the Host header names the
upstream) and appends one JSON line per request to <log-file>:
{"http": "POST", "version": <MCP-Protocol-Version header or null>, "rpc": <JSON-RPC method or null>}
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
            rpc = json.loads(body).get("method") if body else None
        except (ValueError, AttributeError):
            rpc = None
        with lock, open(LOG, "a") as log:
            record = {"http": self.command, "version": self.headers.get("mcp-protocol-version"), "rpc": rpc}
            log.write(json.dumps(record) + "\n")
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
            try:
                while chunk := answer.read1(65536):
                    self.wfile.write(b"%x\r\n%s\r\n" % (len(chunk), chunk))
                    self.wfile.flush()
                self.wfile.write(b"0\r\n\r\n")
            except OSError:
                pass
            upstream.close()
            self.close_connection = True
            return
        payload = answer.read()
        self.send_header("content-length", str(len(payload)))
        self.end_headers()
        self.wfile.write(payload)
        upstream.close()

    do_POST = do_GET = do_DELETE = relay

    def log_message(self, *args):
        pass


ThreadingHTTPServer(("127.0.0.1", LISTEN), Tap).serve_forever()
