"""The MCP Inspector CLI (`inspector --cli ... --format json`) against toolgate, in the modern
era (2026-07-28) and the legacy one (initialize handshake). The Inspector talks to toolgate
through wiretap.py, whose log shows which era was really used on the wire.

Usage: python inspector_cli.py <node> <inspector-bin> <tap-mcp-url> <tap-log> <home-dir>
Prints `inspector-cli: N passed, M failed`; exits 1 on the first failed check.
"""

import json
import os
import pathlib
import subprocess
import sys

node, inspector, url, tap_log, home = sys.argv[1:]
tap = pathlib.Path(tap_log)
env = dict(os.environ, HOME=home, MCP_CATALOG_PATH=f"{home}/catalog.json",
           MCP_CLIENT_CONFIG_PATH=f"{home}/client.json", MCP_STORAGE_DIR=f"{home}/storage", NO_COLOR="1")
passed = 0

EXPECTED = ["restaurants___searchRestaurants", "restaurants___getRestaurant",
            "restaurants___getMenu", "restaurants___createReservation"]


def check(condition, message):
    global passed
    if not condition:
        raise AssertionError(message)
    passed += 1


def inspect(era, *args):
    """Runs the Inspector CLI; returns (exit code, parsed stdout or None, stderr, wire log)."""
    tap.write_text("")
    command = [node, inspector, "--cli", url, "--protocol-era", era, "--format", "json", *args]
    run = subprocess.run(command, capture_output=True, text=True, timeout=120, env=env)
    try:
        out = json.loads(run.stdout) if run.stdout.strip() else None
    except ValueError:
        out = None
    wire = [json.loads(line) for line in tap.read_text().splitlines() if line.strip()]
    return run.returncode, out, run.stderr, wire


def check_wire(era, wire, what):
    methods = [w["rpc"] for w in wire]
    if era == "modern":
        check("initialize" not in methods, f"{what}: the modern era sent initialize: {methods}")
        check(all(w["version"] == "2026-07-28" for w in wire if w["http"] == "POST"),
              f"{what}: modern requests without MCP-Protocol-Version 2026-07-28: {wire}")
    else:
        check(methods[:1] == ["initialize"], f"{what}: the legacy era did not start with initialize: {methods}")
        check(all(w["version"] == "2025-11-25" for w in wire[1:]),
              f"{what}: legacy requests not on 2025-11-25: {wire}")


def run(era):
    code, out, err, wire = inspect(era, "--method", "tools/list", "--strict")
    check(code == 0 and out is not None, f"{era} tools/list: exit {code}, stdout not JSON; stderr: {err[-800:]}")
    tools = out["result"]["tools"]
    names = [t["name"] for t in tools]
    check(names == EXPECTED, f"{era} tools/list: {names}")
    check(all(t["inputSchema"]["type"] == "object" and "description" in t for t in tools), f"{era}: tool shapes")
    check([w["rpc"] for w in wire].count("tools/list") >= 2, f"{era} tools/list: pages not followed: {wire}")
    check_wire(era, wire, f"{era} tools/list")

    code, out, err, wire = inspect(era, "--method", "tools/call", "--tool-name", "restaurants___getMenu",
                                   "--tool-args-json", '{"restaurantId": "r-105", "vegetarian": true}')
    check(code == 0 and out is not None, f"{era} tools/call: exit {code}; stderr: {err[-800:]}")
    result = out["result"]
    check(result.get("isError") is False, f"{era} tools/call: {result}")
    dishes = result["structuredContent"]["result"]
    check(dishes and all(d["vegetarian"] for d in dishes), f"{era} tools/call: filter not applied: {dishes}")
    check(json.loads(result["content"][0]["text"]) == dishes, f"{era} tools/call: text differs from structuredContent")
    check_wire(era, wire, f"{era} tools/call")

    code, out, err, _ = inspect(era, "--method", "tools/call", "--tool-name", "restaurants___getRestaurant",
                                "--tool-args-json", '{"restaurantId": "bad"}')
    check(code != 0 and out is not None and out["result"]["isError"] is True,
          f"{era} invalid arguments: exit {code}, {out}")
    check("/restaurantId" in out["result"]["content"][0]["text"], f"{era} invalid arguments: {out}")

    code, out, err, _ = inspect(era, "--method", "tools/call", "--tool-name", "restaurants___noSuchTool")
    check(code != 0 and "tool_not_found" in err, f"{era} unknown tool: exit {code}, stderr {err[-400:]}")


try:
    run("modern")
    run("legacy")
except (AssertionError, KeyError, TypeError, subprocess.TimeoutExpired) as e:
    print(f"inspector-cli: {type(e).__name__}: {e}", file=sys.stderr)
    print(f"inspector-cli: {passed} passed, 1 failed")
    sys.exit(1)
print(f"inspector-cli: {passed} passed, 0 failed")
