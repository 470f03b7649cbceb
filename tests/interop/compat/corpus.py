"""Writes the compatibility judge's gateway config: one target per document of tests/corpus
that loads, every base URL on the suite's one loopback upstream.

Usage: python corpus.py <toolgate> <corpus-dir> <upstream-port> <gateway-port> <out-dir>
Writes <out-dir>/gateway.yaml, targets.json (target -> document, for upstream.py),
tools.json (`toolgate tools --json` of that config) and refused.json (documents that do
not load, with `toolgate check`'s message). A document is kept when the whole config passes
`toolgate check`; otherwise every document is checked alone and the refused ones are left out.
"""

import json
import pathlib
import re
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor

toolgate, corpus, upstream_port, gateway_port, out = sys.argv[1:]
corpus, out = pathlib.Path(corpus).resolve(), pathlib.Path(out)
out.mkdir(parents=True, exist_ok=True)
FOLDERS = ["oai", "features/2.0", "features/3.0", "features/3.1", "real"]
TAGS = {"oai": "oai", "features/2.0": "f20", "features/3.0": "f30", "features/3.1": "f31", "real": "real"}

targets = {}
for folder in FOLDERS:
    for path in sorted((corpus / folder).rglob("*")):
        if path.suffix in (".json", ".yaml", ".yml"):
            stem = str(path.relative_to(corpus / folder).with_suffix(""))
            name = TAGS[folder] + "_" + re.sub(r"[^A-Za-z0-9]+", "_", stem).strip("_")
            targets[name] = str(path)


def config(names):
    lines = [f"listen: 127.0.0.1:{gateway_port}", "gateway: { name: toolgate-compat }", "targets:"]
    for name in names:
        lines += [f"  - name: {name}",
                  f"    openapi: {{ spec: {json.dumps(targets[name])}, base_url: \"http://127.0.0.1:{upstream_port}/t/{name}\", include_deprecated: true }}",
                  "    timeout: 10s"]
    return "\n".join(lines) + "\n"


def check(names, file):
    file.write_text(config(names))
    run = subprocess.run([toolgate, "check", "--config", str(file)], capture_output=True, text=True)
    return run.returncode == 0, (run.stdout + run.stderr).strip()


gateway = out / "gateway.yaml"
ok, _ = check(list(targets), gateway)
refused = {}
if not ok:
    single = out / "single"
    single.mkdir(exist_ok=True)

    def alone(name):
        return name, *check([name], single / f"{name}.yaml")

    with ThreadPoolExecutor(2) as pool:
        for name, loaded, message in pool.map(alone, list(targets)):
            if not loaded:
                refused[name] = {"document": targets[name], "message": message[-2000:]}
    kept = [n for n in targets if n not in refused]
    ok, message = check(kept, gateway)
    if not ok:
        sys.exit(f"corpus: the config of the {len(kept)} documents that load alone does not load:\n{message}")
kept = {n: p for n, p in targets.items() if n not in refused}
(out / "targets.json").write_text(json.dumps(kept, indent=1))
(out / "refused.json").write_text(json.dumps(refused, indent=1))
tools = subprocess.run([toolgate, "tools", "--config", str(gateway), "--json"], capture_output=True, text=True, check=True)
(out / "tools.json").write_text(tools.stdout)
print(f"corpus: {len(kept)} documents loaded, {len(refused)} refused, {len(json.loads(tools.stdout)['tools'])} tools")
