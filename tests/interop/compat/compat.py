"""The agent-framework compatibility judge: each framework's own MCP client and tool
conversion against a toolgate that serves every document of tests/corpus (no LLM).

Usage: python compat.py <gateway-port> <work-dir> <known-failures.yaml>
<work-dir> is corpus.py's output (tools.json, refused.json); the gateway listens on
127.0.0.1:<gateway-port> in front of upstream.py. Every framework run (frameworks.py, in the
venv that has it, two at a time) goes through its own wiretap.py, whose log shows the era
used on the wire, the tools/list pages read, the arguments sent and each call's result.

Checks, per framework and era: the era on the wire (1); the framework saw the whole
catalog (1); per tool it listed, converted without error into its tool type and a function
tool a model API accepts (1 each); per sampled call, the framework returned without raising
and the MCP result carried structuredContent or isError when the tool has an outputSchema,
and no isError caused by a `null` the framework sent for an argument it was not given (1
each). A failure that <known-failures.yaml> explains (a framework's own bug) is counted as
known, not failed; an entry that explains nothing is stale and fails.
Prints a table, the failures grouped by cause, and `compat: N passed, M failed` last;
writes <work-dir>/report.json. Exits 1 when any check failed.
"""

import collections
import hashlib
import json
import os
import pathlib
import re
import socket
import subprocess
import sys
import time
import urllib.request
from concurrent.futures import ThreadPoolExecutor

import yaml
from jsonschema import Draft202012Validator

from schemagen import generate

HERE = pathlib.Path(__file__).resolve().parent
gateway_port, work, known_path = sys.argv[1], pathlib.Path(sys.argv[2]), sys.argv[3]
VENVS = {"mcp2": HERE / ".venv" / "bin" / "python", "mcp1": HERE / ".venv-mcp1" / "bin" / "python"}
# (framework, era, venv): the era is chosen where the framework lets one choose (Pydantic AI:
# FastMCP Client mode), else it follows the installed MCP SDK (Strands, OpenAI Agents use the
# 2.x client's mode="auto"; LangChain, CrewAI need mcp 1.x; LlamaIndex always initializes).
RUNS = [
    ("langchain", "legacy", "mcp1"),
    ("crewai", "legacy", "mcp1"),
    ("strands", "legacy", "mcp1"),
    ("strands", "modern", "mcp2"),
    ("llama-index", "legacy", "mcp2"),
    ("openai-agents", "modern", "mcp2"),
    ("pydantic-ai", "modern", "mcp2"),
    ("pydantic-ai", "legacy", "mcp2"),
]
only = os.environ.get("COMPAT_ONLY")  # e.g. "crewai,pydantic-ai": a subset, for debugging
if only:
    RUNS = [r for r in RUNS if r[0] in only.split(",")]

catalog = json.loads((work / "tools.json").read_text())["tools"]
refused = json.loads((work / "refused.json").read_text())
names = {t["name"] for t in catalog}
has_output = {t["name"] for t in catalog if "outputSchema" in t}
targets = sorted({t["name"].split("___")[0] for t in catalog})

# Sample candidates: every tool whose simplest required-only arguments validate against its
# inputSchema, in sha256 order of its name (deterministic, spread across documents).
candidates, no_args = [], []
for tool in catalog:
    schema = tool["inputSchema"]
    args = generate(schema, schema)
    error = next(Draft202012Validator(schema).iter_errors(args), None)
    if error is not None:
        no_args.append({"tool": tool["name"], "why": error.message[:200]})
        continue
    candidates.append({"name": tool["name"], "target": tool["name"].split("___")[0], "args": args,
                       "output_schema": tool["name"] in has_output})
candidates.sort(key=lambda c: hashlib.sha256(c["name"].encode()).hexdigest())
(work / "candidates.json").write_text(json.dumps(candidates))
by_candidate = {c["name"]: c for c in candidates}


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def run(framework, era, venv):
    """One framework run through its own wiretap; returns its report with the wire's view."""
    tag = f"{framework}-{era}"
    port, log = free_port(), work / f"tap-{tag}.log"
    log.write_text("")
    tap = subprocess.Popen([str(VENVS["mcp2"]), str(HERE.parent / "wiretap.py"), str(port), gateway_port, str(log)],
                           stderr=subprocess.DEVNULL)
    try:
        for _ in range(100):
            try:
                urllib.request.urlopen(f"http://127.0.0.1:{port}/readyz", timeout=1)
                break
            except OSError:
                time.sleep(0.1)
        out = work / f"run-{tag}.json"
        started = time.monotonic()
        try:
            proc = subprocess.run([str(VENVS[venv]), str(HERE / "frameworks.py"), framework, era,
                                   f"http://127.0.0.1:{port}/mcp", str(work / "candidates.json"), str(out)],
                                  capture_output=True, text=True, timeout=600, cwd=work)
            stderr = proc.stderr
        except subprocess.TimeoutExpired as e:
            stderr = f"timed out after 600 s\n{e.stderr or ''}"
        seconds = round(time.monotonic() - started, 1)
        report = json.loads(out.read_text()) if out.exists() else {"fatal": "no report", "listed": [], "converted": [],
                                                                   "conversion_failures": [], "api_problems": [], "calls": [],
                                                                   "notes": [], "strict": {}}
        (work / f"run-{tag}.err").write_text(stderr)
    finally:
        tap.terminate()
        tap.wait()
    report.update(framework=framework, era=era, venv=venv, seconds=seconds,
                  wire=[json.loads(line) for line in log.read_text().splitlines() if line.strip()])
    return report


def judge(report):
    """The run's checks: list of (check, ok, detail) with detail naming the tool if any."""
    checks = []
    wire, era = report["wire"], report["era"]
    posts = [w for w in wire if w["http"] == "POST"]
    initialized = any(w["rpc"] == "initialize" for w in posts)
    versions = sorted({w["version"] for w in posts if w["version"]})
    if era == "modern":
        ok = not initialized and versions == ["2026-07-28"]
    else:
        ok = initialized and versions and all(v < "2026" for v in versions)
    report["wire_era"] = {"initialize": initialized, "versions": versions}
    checks.append(("era", bool(ok), f"expected {era}; on the wire: initialize={initialized}, MCP-Protocol-Version {versions}"))
    if "fatal" in report:
        checks.append(("run", False, f"the run failed: {report['fatal']}"))
    listed = set(report["listed"])
    pages = sum(1 for w in posts if w["rpc"] == "tools/list")
    report["tools_list_requests"] = pages
    missing = names - listed
    checks.append(("listed", not missing and len(report["listed"]) == len(listed),
                   f"saw {len(listed)} of {len(names)} tools ({pages} tools/list requests on the wire)"
                   + (f"; duplicates listed" if len(report["listed"]) != len(listed) else "")))
    failures = {f["tool"]: f["error"] for f in report["conversion_failures"]}
    problems = collections.defaultdict(list)
    for p in report["api_problems"]:
        problems[p["tool"]].append(f"{p['rule']}: {p['detail']}")
    converted = {c["tool"] for c in report["converted"]}
    for tool in sorted(listed):
        if tool in failures:
            checks.append(("conversion", False, f"{tool}: {failures[tool]}"))
        elif tool not in converted:
            checks.append(("conversion", False, f"{tool}: listed but not converted"))
        elif tool in problems:
            checks.append(("model-api", False, f"{tool}: {problems[tool][0]}"))
        else:
            checks.append(("conversion", True, tool))
    calls_on_wire = collections.defaultdict(list)
    for w in wire:
        if w.get("rpc") == "tools/call":
            calls_on_wire[w.get("tool")].append(w)
    report["null_arguments"] = []
    for call in report["calls"]:
        tool = call["tool"]
        sent = calls_on_wire.get(tool, [])
        result = sent[-1].get("result") if sent else None
        args = sent[-1].get("args") if sent else None
        nulls = sorted(k for k, v in (args or {}).items() if v is None and k not in by_candidate[tool]["args"])
        if nulls:
            report["null_arguments"].append({"tool": tool, "nulls": nulls, "result": result})
        call["wire"] = {"sent": len(sent), "args": args, "result": result}
        if not call["ok"]:
            checks.append(("call", False, f"{tool}: the framework raised: {call['error']}"))
        elif not sent or result is None:
            checks.append(("call", False, f"{tool}: no tools/call answer seen on the wire"))
        elif "error" in result:
            checks.append(("call", False, f"{tool}: JSON-RPC error {result['error']}"))
        elif tool in has_output and not result["structured"] and not result["isError"]:
            checks.append(("call", False, f"{tool}: has an outputSchema, but the result has no structuredContent and is not isError"))
        elif nulls and result["isError"]:
            checks.append(("call", False, f"{tool}: isError after the framework sent null for {nulls} (not given): {result.get('text', '')[:200]}"))
        else:
            checks.append(("call", True, tool))
    return checks


def cause(check, detail):
    """A failure's cause without the tool's name, paths and numbers, to group by."""
    tool, _, text = detail.partition(": ") if check != "listed" else ("", "", detail)
    text = " ".join(text.replace(tool, "<tool>").split()) if tool else text
    text = text.split(" (not given)")[0]
    if check == "listed":
        return f"{check}: only part of the catalog"
    text = re.sub(r"#/[^\s:,)]*", "#/...", text)
    text = re.sub(r"\[[^\]]*\]", "[...]", text)
    text = re.sub(r"'[^']*'", "'...'", text)
    text = re.sub(r"\d+", "N", text)
    return f"{check}: {text[:160]}"


known = yaml.safe_load(pathlib.Path(known_path).read_text()) or []
results = []
started = time.monotonic()
with ThreadPoolExecutor(2) as pool:
    for report in pool.map(lambda r: run(*r), RUNS):
        results.append(report)
elapsed = round(time.monotonic() - started, 1)

passed = failed = known_count = 0
used = collections.Counter()
table, groups = [], []
ran = {r[0] for r in RUNS}
for report in results:
    checks = judge(report)
    report["checks"] = {"passed": 0, "failed": [], "known": []}
    by_cause = collections.defaultdict(list)
    calls_ok = sum(1 for check, ok, _ in checks if check == "call" and ok)
    for check, ok, detail in checks:
        if ok:
            passed += 1
            report["checks"]["passed"] += 1
            continue
        entry = next((i for i, k in enumerate(known) if k["framework"] == report["framework"] and k["check"] == check
                      and k.get("era", report["era"]) == report["era"] and re.search(k["match"], detail)), None)
        if entry is not None:
            known_count += 1
            used[entry] += 1
            report["checks"]["known"].append({"check": check, "detail": detail, "known": entry})
        else:
            failed += 1
            report["checks"]["failed"].append({"check": check, "detail": detail})
        by_cause[(cause(check, detail), entry)].append(detail.split(": ", 1)[0] if check != "listed" else "")
    calls = report["calls"]
    table.append((report["framework"], report["era"], report["venv"], f"{len(set(report['listed']))}/{len(names)}",
                  str(report.get("tools_list_requests", "")), str(len(report["converted"])),
                  str(len(report["conversion_failures"])), str(len({p['tool'] for p in report["api_problems"]})),
                  f"{calls_ok}/{len(calls)}", str(len(report["null_arguments"])), f"{report['seconds']}"))
    for (why, entry), tools in sorted(by_cause.items(), key=lambda kv: -len(kv[1])):
        tools = [t for t in tools if t]
        label = f"known #{entry + 1}" if entry is not None else "FAILED"
        listed_detail = next((d for c, ok, d in checks if c == "listed"), "") if why.startswith("listed") else ""
        groups.append(f"  {report['framework']} {report['era']} [{label}] {' '.join(why.split())}"
                      + (f": {listed_detail}" if listed_detail else "")
                      + (f" ({len(tools)}: {', '.join(tools[:3])}{', ...' if len(tools) > 3 else ''})" if tools else ""))
    for note in report.get("notes", []):
        groups.append(f"  {report['framework']} {report['era']} note: {note}")
    if report["null_arguments"]:
        sample = report["null_arguments"][0]
        groups.append(f"  {report['framework']} {report['era']} note: sent null for arguments it was not given in "
                      f"{len(report['null_arguments'])} of {len(calls)} calls (e.g. {sample['tool']}: {sample['nulls'][:4]})")
    strict = report.get("strict") or {}
    if strict.get("strict") or strict.get("not_strict"):
        reasons = "; ".join(f"{n}x {r}" for r, n in sorted(strict.get("reasons", {}).items(), key=lambda kv: -kv[1])[:3])
        groups.append(f"  {report['framework']} {report['era']} note: {strict.get('strict', 0)} tools sent as strict, "
                      f"{strict.get('not_strict', 0)} not strict" + (f" ({reasons})" if reasons else ""))
for i, entry in enumerate(known):
    if entry["framework"] in ran and not used[i]:
        failed += 1
        groups.append(f"  [FAILED] stale known-failures entry #{i + 1} ({entry['framework']} {entry['check']} /{entry['match']}/): it explains nothing")

header = ("framework", "era", "venv", "saw/catalog", "lists", "converted", "conv.failed", "api-problems", "calls ok", "nulls", "s")
widths = [max(len(str(row[i])) for row in [header] + table) for i in range(len(header))]
print(f"catalog: {len(names)} tools from {len(targets)} documents ({len(refused)} documents refused), "
      f"{len(has_output)} with an outputSchema; {len(candidates)} sample candidates ({len(no_args)} without simple valid arguments)")
for row in [header] + table:
    print("  " + "  ".join(str(v).ljust(w) for v, w in zip(row, widths)))
print("failures by cause, notes:")
for line in groups:
    print(line)
(work / "report.json").write_text(json.dumps({"catalog": len(names), "documents": len(targets), "refused": refused,
                                              "no_simple_arguments": no_args, "seconds": elapsed, "known": known,
                                              "runs": results}, indent=1))
print(f"report: {work / 'report.json'} ({elapsed} s)")
print(f"compat: {passed} passed, {failed} failed ({known_count} known framework failures)")
sys.exit(1 if failed else 0)
