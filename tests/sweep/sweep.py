#!/usr/bin/env python3
"""Robustness sweep: runs `toolgate tools --openapi DOC --json` over public OpenAPI documents
(collected by fetch_specs.sh into the ignored tests/sweep/specs) and checks the output.

For every document: exit status and message, wall time and peak RSS, operations in the
source versus tools and skipped entries. For every tool: a legal, unique name; input and
output schemas that are valid JSON Schema 2020-12 (meta-schema check) whose local `$ref`s
all resolve; then a fidelity check against the source document (parameters present with
their type, required lists, request body properties, readOnly properties left out of
inputs).

    python3 tests/sweep/sweep.py [--bin target/release/toolgate] [--specs tests/sweep/specs]
                                 [--odd] [--json report.json] [DOC...]

Needs Python 3.10+ with `jsonschema` and `PyYAML`.
"""

import argparse
import json
import os
import re
import subprocess
import sys
import time
import urllib.parse
from collections import Counter
from pathlib import Path

import jsonschema
import yaml

NAME = re.compile(r"^[A-Za-z0-9_.-]{1,64}$")
METHODS = ["get", "put", "post", "delete", "options", "head", "patch", "trace"]
IGNORED_HEADERS = {"accept", "content-type", "authorization"}

# The main documents of the sweep (relative to --specs); --odd adds every OpenAPI root found
# under odd/, autorest/ and azure-*/.
MAIN = [
    "stripe/spec3-2020.json",
    "stripe/spec3-early.json",
    "box/openapi.json",
    "box/openapi-v2025.0.json",
    "museum/openapi.yaml",
    "apicurio/ccompat-v7.json",
    "apicurio/gitops-v0.json",
    "apicurio/iceberg-v1.json",
    "apicurio/registry-v2.json",
    "digitalocean/specification/DigitalOcean-public.v2.yaml",
    "discord/openapi.json",
    "spotify/fixed-spotify-open-api.yml",
    "spotify/official-spotify-open-api.yml",
    "adyen/CheckoutService-v72.json",
    "adyen/BalancePlatformService-v2.json",
    "adyen/ManagementService-v3.json",
    "adyen/LegalEntityService-v4.json",
    "adyen/PaymentService-v68.json",
    "adyen/PaymentService-v68.yaml",
    "adyen/TransferService-v4.json",
    "adyen/RecurringService-v68.json",
    "adyen/BalancePlatformTransferNotification-v4.json",
    "xero/xero_accounting.yaml",
    "xero/xero-payroll-uk.yaml",
    "xero/xero-payroll-au.yaml",
    "xero/xero-projects.yaml",
    "xero/xero-identity.yaml",
    "xero/xero_files.yaml",
    "xero/xero_assets.yaml",
    "xero/xero-webhooks.yaml",
    "pagerduty/REST.json",
    "pagerduty/events-v2.json",
    "pagerduty/scim.json",
    "pagerduty/integration-jira-service.json",
    "pagerduty/mcp.json",
    "netlify/swagger.yml",
    "asana/asana_oas.yaml",
    "asana/app_components_oas.yaml",
    "argo/swagger.json",
    "argo/executor-swagger.yml",
    "kubernetes/swagger.json",
    "resend/resend.yaml",
    "realworld/openapi.yml",
    "azure-live/test/liveValidation/swaggers/specification/compute/resource-manager/Microsoft.Compute/stable/2021-11-01/compute.json",
    "azure-live/test/liveValidation/swaggers/specification/batch/data-plane/Microsoft.Batch/stable/2019-08-01.10.0/BatchService.json",
    "azure-live/test/liveValidation/swaggers/specification/apimanagement/resource-manager/Microsoft.ApiManagement/preview/2018-01-01/apimapis.json",
    "azure-live/test/liveValidation/swaggers/specification/cognitiveservices/data-plane/Language/preview/2022-10-01-preview/analyzetext-authoring.json",
    "azure-scenario/test/apiScenario/fixtures/specification/storage/resource-manager/Microsoft.Storage/stable/2021-08-01/storage.json",
    "azure-scenario/test/apiScenario/fixtures/specification/resources/resource-manager/Microsoft.Resources/stable/2021-04-01/resources.json",
    "azure-scenario/test/apiScenario/fixtures/specification/appconfiguration/data-plane/Microsoft.AppConfiguration/stable/1.0/appconfiguration.json",
]


def load(path):
    text = Path(path).read_text(encoding="utf-8-sig")
    if text.lstrip().startswith(("{", "[")):
        try:
            return json.loads(text)
        except ValueError:
            pass
    return yaml.load(text, Loader=yaml.CSafeLoader if hasattr(yaml, "CSafeLoader") else yaml.SafeLoader)


class Docs:
    """The documents of one conversion, for independent `$ref` resolution."""

    def __init__(self, main_path):
        self.cache = {}
        self.main = str(Path(main_path).resolve())
        self.cache[self.main] = load(main_path)

    def get(self, path):
        if path not in self.cache:
            try:
                self.cache[path] = load(path)
            except Exception:  # noqa: BLE001
                self.cache[path] = None
        return self.cache[path]

    def lookup(self, base, ref):
        file, _, frag = ref.partition("#")
        path = base if not file else str((Path(base).parent / urllib.parse.unquote(file)).resolve())
        value = self.get(path)
        for tok in [t for t in urllib.parse.unquote(frag).split("/")[1:]]:
            tok = tok.replace("~1", "/").replace("~0", "~")
            if isinstance(value, dict):
                value = value.get(tok)
            elif isinstance(value, list) and tok.isdigit() and int(tok) < len(value):
                value = value[int(tok)]
            else:
                return path, None
        return path, value

    def deref(self, base, value, hops=32):
        while isinstance(value, dict) and isinstance(value.get("$ref"), str) and hops:
            base, value = self.lookup(base, value["$ref"])
            hops -= 1
        return base, value


def operations(doc):
    """(method, path, operation, path item) of a document, path items not dereferenced."""
    out = []
    for path, item in (doc.get("paths") or {}).items():
        if not isinstance(item, dict) or path.startswith("x-"):
            continue
        for m in METHODS:
            if isinstance(item.get(m), dict):
                out.append((m, path, item[m], item))
    return out


def check_refs(schema):
    """Local `$ref`s of an emitted schema that do not resolve."""
    bad = []
    stack = [schema]
    while stack:
        v = stack.pop()
        if isinstance(v, dict):
            r = v.get("$ref")
            if isinstance(r, str):
                target = schema
                ok = r.startswith("#")
                for tok in r[1:].split("/")[1:] if ok else []:
                    tok = urllib.parse.unquote(tok).replace("~1", "/").replace("~0", "~")
                    if isinstance(target, dict) and tok in target:
                        target = target[tok]
                    else:
                        ok = False
                        break
                if not ok:
                    bad.append(r)
            stack.extend(v.values())
        elif isinstance(v, list):
            stack.extend(v)
    return bad


def sanitize(raw):
    out = []
    for c in raw:
        c = c if (c.isascii() and (c.isalnum() or c in "_.-")) else "_"
        if c == "_" and out and out[-1] == "_":
            continue
        out.append(c)
    return "".join(out).strip("_")


def schema_type(s):
    return s.get("type") if isinstance(s, dict) else None


def fidelity(docs, doc, tools_by_local, swagger2, problems, limit=400):
    """Compares each operation with its tool (when the tool can be found by name)."""
    base = docs.main
    for method, path, op, item in operations(doc):
        op_id = op.get("operationId")
        local = op_id.strip() if isinstance(op_id, str) and sanitize(op_id.strip()) else None
        local = sanitize(local) if local else sanitize(f"{method}_{path}")
        tool = tools_by_local.get(local)
        if tool is None:
            continue
        inp = tool.get("inputSchema", {})
        props = inp.get("properties", {})
        required = set(inp.get("required", []))
        at = f"{method.upper()} {path}"
        params = {}
        body_param = None
        form = []
        for owner in (item, op):
            for p in owner.get("parameters") or []:
                pbase, p = docs.deref(base, p)
                if not isinstance(p, dict) or "name" not in p:
                    continue
                params[(p.get("name"), p.get("in"))] = (pbase, p)
        for (name, loc), (pbase, p) in params.items():
            if loc == "header" and str(name).lower() in IGNORED_HEADERS:
                continue
            if loc == "body":
                body_param = (pbase, p)
                continue
            if loc == "formData":
                form.append((name, p))
                continue
            if loc == "path" and "{" + str(name) + "}" not in path:
                continue
            arg = name if name in props else f"{loc}_{name}" if f"{loc}_{name}" in props else None
            if arg is None:
                problems.append(f"{at}: parameter {loc}:{name} has no argument")
                continue
            if (p.get("required") is True or loc == "path") and arg not in required:
                problems.append(f"{at}: required parameter {loc}:{name} is not required")
            # Type of a simple schema.
            src = p if swagger2 else docs.deref(pbase, p.get("schema"))[1]
            st = schema_type(src)
            dt = schema_type(props[arg])
            if isinstance(st, str) and st != "file":
                if isinstance(dt, list):
                    dt = [t for t in dt if t != "null"]
                    dt = dt[0] if len(dt) == 1 else dt
                if dt is not None and dt != st and not (st == "integer" and dt == "number"):
                    problems.append(f"{at}: parameter {name}: type {st} became {dt}")
        for name, p in form:
            if name not in props and "body" not in props:
                problems.append(f"{at}: form field {name} has no argument")
        # JSON request body.
        if swagger2:
            body_schema = body_param[1].get("schema") if body_param else None
            bbase = body_param[0] if body_param else base
            body_required = bool(body_param and body_param[1].get("required"))
        else:
            rb_base, rb = docs.deref(base, op.get("requestBody"))
            content = (rb or {}).get("content") or {}
            json_media = [k for k in content if "json" in k.lower()]
            body_schema = content[json_media[0]].get("schema") if json_media and isinstance(content[json_media[0]], dict) else None
            bbase = rb_base
            body_required = bool(rb and rb.get("required"))
            if not json_media and content:
                continue
        if not isinstance(body_schema, dict):
            continue
        sbase, s = docs.deref(bbase, body_schema)
        if not isinstance(s, dict) or not isinstance(s.get("properties"), dict):
            continue
        whole = [k for k in props if k in ("body", "request_body") or k.startswith("request_body")]
        flattened = not whole
        for pname, pschema in s["properties"].items():
            _, ps = docs.deref(sbase, pschema)
            read_only = isinstance(ps, dict) and ps.get("readOnly") is True or (
                isinstance(pschema, dict) and pschema.get("readOnly") is True)
            if flattened:
                if read_only and pname in props and not any(pname == n for (n, _l) in params):
                    problems.append(f"{at}: readOnly body property {pname} is an argument")
                if not read_only and pname not in props:
                    problems.append(f"{at}: body property {pname} has no argument")
                if (not read_only and body_required and pname in (s.get("required") or [])
                        and pname not in required):
                    problems.append(f"{at}: required body property {pname} is not required")
        if len(problems) > limit:
            return


def is_root(path):
    try:
        head = Path(path).read_text(encoding="utf-8-sig", errors="replace")[:4000]
    except OSError:
        return False
    return bool(re.search(r"""^\s*["']?(openapi|swagger)["']?\s*:""", head, re.M))


def run_one(binary, spec, timeout):
    cmd = ["/usr/bin/time", "-f", "%e %M", binary, "tools", "--openapi", str(spec), "--json"]
    t0 = time.monotonic()
    try:
        proc = subprocess.run(cmd, capture_output=True, timeout=timeout, text=True)
    except subprocess.TimeoutExpired:
        return {"status": "TIMEOUT", "seconds": timeout}
    wall = time.monotonic() - t0
    lines = proc.stderr.strip().splitlines()
    rss_kb = None
    if lines and re.match(r"^[\d.]+ \d+$", lines[-1]):
        rss_kb = int(lines[-1].split()[1])
        lines = lines[:-1]
    result = {"rc": proc.returncode, "seconds": round(wall, 2), "rss_mb": rss_kb and round(rss_kb / 1024)}
    result["stderr"] = [l for l in lines if not l.startswith("warning:")][:5]
    result["warnings"] = len([l for l in lines if l.startswith("warning:")])
    if proc.returncode != 0:
        result["status"] = "PANIC" if ("panicked" in proc.stderr or proc.returncode < 0 or proc.returncode > 1) else "REJECTED"
        return result
    try:
        result["out"] = json.loads(proc.stdout)
    except ValueError as e:
        result["status"] = f"BAD JSON OUTPUT: {e}"
        return result
    result["status"] = "OK"
    return result


def sweep(binary, spec, timeout, do_fidelity=True):
    r = run_one(binary, spec, timeout)
    row = {"doc": str(spec), "status": r["status"], "seconds": r.get("seconds"), "rss_mb": r.get("rss_mb"),
           "message": r.get("stderr"), "problems": []}
    try:
        doc = load(spec)
    except Exception as e:  # noqa: BLE001
        doc = None
        row["source_error"] = str(e)[:200]
    swagger2 = isinstance(doc, dict) and "swagger" in doc and "openapi" not in doc
    row["version"] = (doc.get("openapi") or doc.get("swagger")) if isinstance(doc, dict) else None
    row["ops"] = len(operations(doc)) if isinstance(doc, dict) else None
    if r["status"] != "OK":
        return row
    out = r["out"]
    tools = out.get("tools", [])
    row["tools"] = len(tools)
    row["skipped"] = len(out.get("skipped", []))
    row["skip_reasons"] = Counter(re.sub(r"'[^']*'|#/\S+|\d+", "…", s["reason"])[:140] for s in out.get("skipped", []))
    row["skip_examples"] = out.get("skipped", [])[:8]
    names = Counter(t.get("name") for t in tools)
    problems = row["problems"]
    for n, c in names.items():
        if not isinstance(n, str) or not NAME.match(n):
            problems.append(f"illegal tool name {n!r}")
        if c > 1:
            problems.append(f"duplicate tool name {n!r} x{c}")
    validator = jsonschema.Draft202012Validator
    for t in tools:
        for key in ("inputSchema", "outputSchema"):
            s = t.get(key)
            if s is None:
                continue
            if s.get("type") != "object":
                problems.append(f"{t['name']}: {key} type is {s.get('type')!r}")
            try:
                validator.check_schema(s)
            except jsonschema.SchemaError as e:
                problems.append(f"{t['name']}: {key} invalid: {e.message[:200]} at {list(e.absolute_path)[:8]}")
            bad = check_refs(s)
            if bad:
                problems.append(f"{t['name']}: {key} unresolvable $ref {bad[:3]}")
        if not (t.get("description") or "").strip():
            problems.append(f"{t['name']}: empty description")
    if do_fidelity and isinstance(doc, dict):
        stem = sanitize(Path(spec).stem)
        by_local = {}
        for t in tools:
            n = t["name"]
            if n.startswith(stem + "___"):
                by_local[n[len(stem) + 3:]] = t
        try:
            fidelity(Docs(spec), doc, by_local, swagger2, problems)
        except RecursionError:
            problems.append("fidelity check: recursion")
    return row


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--bin", default=str(Path(__file__).resolve().parents[2] / "target/release/toolgate"))
    ap.add_argument("--specs", default=os.environ.get("SPECS", os.path.join(os.path.dirname(os.path.abspath(__file__)), "specs")))
    ap.add_argument("--odd", action="store_true", help="also every OpenAPI root under odd/, autorest/, azure-*/")
    ap.add_argument("--only-odd", action="store_true")
    ap.add_argument("--timeout", type=float, default=60)
    ap.add_argument("--json", help="write the full report here")
    ap.add_argument("docs", nargs="*")
    a = ap.parse_args()
    specs = Path(a.specs)
    docs = [Path(d) for d in a.docs] or ([] if a.only_odd else [specs / d for d in MAIN])
    if a.odd or a.only_odd:
        for folder in ["odd", "autorest", "azure-live", "azure-scenario"]:
            for p in sorted((specs / folder).rglob("*")):
                if p.suffix in (".json", ".yaml", ".yml") and "examples" not in p.parts and p not in docs and is_root(p):
                    docs.append(p)
    rows = []
    for d in docs:
        if not d.exists():
            print(f"MISSING {d}")
            continue
        row = sweep(a.bin, d, a.timeout)
        rows.append(row)
        rel = str(d.relative_to(specs)) if d.is_relative_to(specs) else str(d)
        print(f"{row['status']:8} {rel}  v{row.get('version')} ops={row.get('ops')} tools={row.get('tools')} "
              f"skipped={row.get('skipped')} {row['seconds']}s {row.get('rss_mb')}MB problems={len(row['problems'])}")
        if row["status"] != "OK":
            print("   ", " | ".join(row.get("message") or [])[:400])
        for reason, n in (row.get("skip_reasons") or Counter()).most_common(6):
            print(f"    skip x{n}: {reason}")
        for p in row["problems"][:12]:
            print(f"    ! {p}")
        sys.stdout.flush()
    if a.json:
        Path(a.json).write_text(json.dumps(rows, indent=1, default=str))
    bad = [r for r in rows if r["status"] in ("PANIC", "TIMEOUT") or r["problems"]]
    print(f"\n{len(rows)} documents, {sum(r['status'] == 'OK' for r in rows)} loaded, "
          f"{sum(r.get('tools') or 0 for r in rows)} tools, {sum(r.get('skipped') or 0 for r in rows)} skipped, "
          f"{len(bad)} with problems")


if __name__ == "__main__":
    main()
