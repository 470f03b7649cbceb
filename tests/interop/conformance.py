"""Runs the official MCP conformance suite (server mode) against toolgate, one scenario at a
time at one protocol revision, and judges each run twice: by the suite's own exit code (with
the per-check baseline) and by parsing every checks.json it writes.

Usage: python conformance.py <node> <conformance-cli> <mcp-url> <revision> <baseline.yaml> <out-dir> <scenario>...
Prints one line per scenario and `conformance-<revision>: N passed, M failed (...)`; exits 1
on any failure. A check counts as passed when SUCCESS, as failed when FAILURE or WARNING
unless the baseline lists it (`scenario:check-id`); INFO and SKIPPED are reported, not counted.
"""

import json
import pathlib
import subprocess
import sys

node, cli, url, revision, baseline_path, out_dir, *scenarios = sys.argv[1:]
import os

judge = os.environ.get("CONFORMANCE_JUDGE") or f"conformance-{revision}"

baseline = set()
for line in pathlib.Path(baseline_path).read_text().splitlines():
    line = line.split("#", 1)[0].strip()
    if line.startswith("- "):
        baseline.add(line[2:].strip())

passed = failed = expected = 0
for scenario in scenarios:
    out = pathlib.Path(out_dir) / revision / scenario
    command = [node, cli, "server", "--url", url, "--scenario", scenario, "--spec-version", revision,
               "--expected-failures", baseline_path, "-o", str(out)]
    run = subprocess.run(command, capture_output=True, text=True, timeout=300)
    files = sorted(out.glob("*/checks.json"))
    checks = json.loads(files[-1].read_text()) if files else []
    ok = bad = known = 0
    problems = []
    for check in checks:
        status, key = check.get("status"), f"{scenario}:{check.get('id')}"
        if status == "SUCCESS":
            ok += 1
        elif status in ("FAILURE", "WARNING"):
            if key in baseline:
                known += 1
            else:
                bad += 1
                problems.append(f"{status} {key}: {check.get('errorMessage') or check.get('description')}")
    if not checks:
        bad += 1
        problems.append("no checks were recorded")
    if run.returncode != 0:
        if bad == 0:
            bad += 1  # e.g. a stale baseline entry, or the suite itself failed
        problems.append(f"the suite exited with {run.returncode}")
    passed, failed, expected = passed + ok, failed + bad, expected + known
    info = sum(1 for c in checks if c.get("status") in ("INFO", "SKIPPED"))
    print(f"  {revision} {scenario}: {ok} passed, {bad} failed, {known} baselined, {info} info/skipped")
    if problems:
        for p in problems:
            print(f"    {p}")
        print("    --- suite output (tail) ---")
        for line in (run.stdout + run.stderr).splitlines()[-25:]:
            print(f"    {line}")

print(f"{judge}: {passed} passed, {failed} failed ({len(scenarios)} scenarios, {expected} baselined checks)")
sys.exit(1 if failed else 0)
