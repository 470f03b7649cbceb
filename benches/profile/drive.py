#!/usr/bin/env python3
"""Sends N sequential keep-alive requests to a gateway or proxy (for callgrind runs: see
BENCHMARKS.md). Usage: drive.py HOST:PORT N [tools/call|tools/list]"""
import http.client
import sys

addr, n = sys.argv[1], int(sys.argv[2])
method = sys.argv[3] if len(sys.argv) > 3 else "tools/call"
meta = '"_meta":{"io.modelcontextprotocol/protocolVersion":"2026-07-28","io.modelcontextprotocol/clientCapabilities":{}}'
if method == "tools/call":
    body = ('{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"api___getPet",'
            '"arguments":{"petId":"7","fields":["name","tag"],"tags":["a","b"],"X-Request-Tag":"bench"},'
            + meta + '}}')
    extra = {"mcp-name": "api___getPet"}
else:
    body = '{"jsonrpc":"2.0","id":2,"method":"tools/list","params":{' + meta + '}}'
    extra = {}
headers = {"content-type": "application/json", "accept": "application/json, text/event-stream",
           "mcp-protocol-version": "2026-07-28", "mcp-method": method, **extra}
conn = http.client.HTTPConnection(addr, timeout=60)
for _ in range(min(n, 100_000)):
    conn.request("POST", "/mcp", body, headers)
    r = conn.getresponse()
    data = r.read()
    assert r.status == 200, (r.status, data[:200])
print(f"{n} requests OK", file=sys.stderr)
