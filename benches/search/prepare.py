#!/usr/bin/env python3
"""Turns BFCL v4 (the Berkeley Function Calling Leaderboard's data, shipped in the PyPI
package `bfcl-eval`) into a tool-retrieval set for `examples/search_eval.rs`.

Each BFCL question comes with the function documents offered to the model and the call(s)
it should make. Here the question is a search query, every distinct function document of
the categories read is a tool of one shared pool, and the gold of a query is the tool the
ground truth calls, taken from *that question's own* function list (several documents of
the pool may share a name; the gold is the one the question was written against).

Categories:
  dev (develop and tune on these): multiple, simple_python, simple_java, simple_javascript
  eval (held out; never tune on them): live_simple, live_multiple, live_parallel
  live_parallel_multiple is skipped: most of its questions call two or more *different*
  functions, so no single tool answers them (pass --allow-multi-function to keep it).

A question with several ground-truth calls (live_parallel: the same function called for
several cities, say) counts as found at rank k when *any* of its gold tools is in the
top k; its gold list holds every such tool.

The tools are MCP tool definitions {name, description, inputSchema}: BFCL's type names
("dict", "float", "tuple", "any", "String", "HashMap"...) become JSON Schema types, "any"
drops the type, BFCL's "optional" flag is dropped. Documents with the same name and
description are one tool (the first one's parameters are kept); documents with the same
name and different descriptions are distinct tools, the later ones renamed `NAME~2`,
`NAME~3`... (the original name is in `origins`).

Output (one JSON object):
  source:  package, version, data directory, categories read/skipped
  tools:   [MCP tool definition]                      (the pool, in a stable order)
  origins: [{name, categories}]                       (parallel to tools: BFCL's name)
  queries: [{id, category, split, text, gold: [tool index]}]

Python 3.11, standard library only.

    python3 benches/search/prepare.py [--data DIR] --out target/bench-search/bfcl.json
"""

from __future__ import annotations

import argparse
import importlib.metadata
import importlib.util
import json
import sys
from pathlib import Path

DEV = ["multiple", "simple_python", "simple_java", "simple_javascript"]
EVAL = ["live_simple", "live_multiple", "live_parallel"]
MULTI_FUNCTION = ["live_parallel_multiple"]

# BFCL type names (Python, Java, JavaScript flavours) -> JSON Schema; None drops the type.
TYPES = {
    "dict": "object",
    "object": "object",
    "hashmap": "object",
    "map": "object",
    "float": "number",
    "double": "number",
    "number": "number",
    "integer": "integer",
    "int": "integer",
    "long": "integer",
    "short": "integer",
    "byte": "integer",
    "string": "string",
    "str": "string",
    "char": "string",
    "boolean": "boolean",
    "bool": "boolean",
    "array": "array",
    "arraylist": "array",
    "list": "array",
    "tuple": "array",
    "set": "array",
    "any": None,
    "": None,
}

# Schema keywords kept as they are (the rest of BFCL's keys are dropped).
KEPT = ("description", "enum", "default", "format", "minimum", "maximum", "pattern", "title")


def schema(node: object) -> dict:
    """The JSON Schema of one BFCL parameter schema."""
    if not isinstance(node, dict):
        return {}
    out: dict = {}
    kind = node.get("type")
    if isinstance(kind, str):
        mapped = TYPES.get(kind.strip().lower(), "unknown")
        if mapped == "unknown":
            print(f"prepare.py: unknown BFCL type {kind!r}, dropped", file=sys.stderr)
        elif mapped is not None:
            out["type"] = mapped
    for key in KEPT:
        if key in node:
            out[key] = node[key]
    properties = node.get("properties")
    if isinstance(properties, dict):
        out["properties"] = {name: schema(p) for name, p in properties.items()}
        out.setdefault("type", "object")
    required = node.get("required")
    if isinstance(required, list) and isinstance(properties, dict):
        kept = [r for r in required if isinstance(r, str) and r in properties]
        if kept:
            out["required"] = kept
    items = node.get("items")
    if isinstance(items, dict):
        out["items"] = schema(items)
    elif isinstance(items, list):  # tuple-like positional items
        out["prefixItems"] = [schema(i) for i in items]
    return out


def definition(function: dict, name: str) -> dict:
    """The MCP tool definition of one BFCL function document."""
    input_schema = schema(function.get("parameters") or {})
    input_schema["type"] = "object"
    input_schema.setdefault("properties", {})
    return {
        "name": name,
        "description": function.get("description") or "",
        "inputSchema": input_schema,
    }


def find_data(explicit: str | None) -> Path:
    if explicit:
        path = Path(explicit)
    else:
        spec = importlib.util.find_spec("bfcl_eval")
        if spec is None or not spec.submodule_search_locations:
            sys.exit(
                "prepare.py: bfcl_eval is not importable; pass --data DIR "
                "(the bfcl_eval/data directory of `pip install bfcl-eval --no-deps`)"
            )
        path = Path(list(spec.submodule_search_locations)[0]) / "data"
    if not (path / "possible_answer").is_dir():
        sys.exit(f"prepare.py: {path} is not BFCL's data directory (no possible_answer/)")
    return path


def json_lines(path: Path) -> list[dict]:
    try:
        with path.open(encoding="utf-8") as f:
            return [json.loads(line) for line in f if line.strip()]
    except (OSError, json.JSONDecodeError) as e:
        sys.exit(f"prepare.py: cannot read {path}: {e}")


def user_text(question: list) -> str:
    """The user message(s) of the first turn (system messages are left out)."""
    turn = question[0] if question else []
    return "\n".join(
        m.get("content", "")
        for m in turn
        if isinstance(m, dict) and m.get("role") == "user" and m.get("content")
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", help="bfcl_eval/data (default: found by importlib)")
    parser.add_argument("--out", required=True, help="JSON file to write")
    parser.add_argument(
        "--allow-multi-function",
        action="store_true",
        help="also read live_parallel_multiple (gold: any of its different functions)",
    )
    args = parser.parse_args()
    data = find_data(args.data)
    try:
        version = importlib.metadata.version("bfcl-eval")
    except importlib.metadata.PackageNotFoundError:
        version = "unknown"

    splits = [(c, "dev") for c in DEV] + [(c, "eval") for c in EVAL]
    skipped = []
    if args.allow_multi_function:
        splits += [(c, "eval") for c in MULTI_FUNCTION]
    else:
        skipped = [
            {"category": c, "why": "calls several different functions per question"}
            for c in MULTI_FUNCTION
        ]

    tools: list[dict] = []
    origins: list[dict] = []
    by_key: dict[tuple[str, str], int] = {}  # (name, description) -> tool index
    variants: dict[str, int] = {}  # name -> documents with this name so far
    queries: list[dict] = []
    for category, split in splits:
        questions = json_lines(data / f"BFCL_v4_{category}.json")
        answers = {
            a["id"]: a for a in json_lines(data / "possible_answer" / f"BFCL_v4_{category}.json")
        }
        for q in questions:
            answer = answers.get(q["id"])
            if answer is None:
                print(f"prepare.py: {q['id']}: no ground truth, skipped", file=sys.stderr)
                continue
            own: dict[str, list[int]] = {}  # this question's functions, name -> tool indices
            for function in q.get("function", []):
                name = function.get("name", "")
                key = (name, function.get("description") or "")
                index = by_key.get(key)
                if index is None:
                    n = variants.get(name, 0) + 1
                    variants[name] = n
                    index = len(tools)
                    by_key[key] = index
                    tools.append(definition(function, name if n == 1 else f"{name}~{n}"))
                    origins.append({"name": name, "categories": []})
                if category not in origins[index]["categories"]:
                    origins[index]["categories"].append(category)
                own.setdefault(name, []).append(index)
            gold_names = []
            for call in answer.get("ground_truth", []):
                for name in call:
                    if name not in gold_names:
                        gold_names.append(name)
            gold = sorted({i for name in gold_names for i in own.get(name, [])})
            missing = [n for n in gold_names if n not in own]
            if missing or not gold:
                print(
                    f"prepare.py: {q['id']}: gold {missing or gold_names} not among its "
                    "functions, skipped",
                    file=sys.stderr,
                )
                continue
            text = user_text(q.get("question", []))
            if not text:
                print(f"prepare.py: {q['id']}: no user message, skipped", file=sys.stderr)
                continue
            queries.append(
                {"id": q["id"], "category": category, "split": split, "text": text, "gold": gold}
            )

    out = {
        "source": {
            "package": "bfcl-eval",
            "version": version,
            "license": "Apache-2.0",
            "data": str(data),
            "categories": [{"category": c, "split": s} for c, s in splits],
            "skipped": skipped,
        },
        "tools": tools,
        "origins": origins,
        "queries": queries,
    }
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    with open(args.out, "w", encoding="utf-8") as f:
        json.dump(out, f, ensure_ascii=False)
    per = {}
    for q in queries:
        per[q["category"]] = per.get(q["category"], 0) + 1
    renamed = sum(1 for t, o in zip(tools, origins) if t["name"] != o["name"])
    print(
        f"prepare.py: {len(tools)} tools ({renamed} renamed NAME~N: same name, another "
        f"description), {len(queries)} queries {per} -> {args.out}",
        file=sys.stderr,
    )
    for s in skipped:
        print(f"prepare.py: skipped {s['category']}: {s['why']}", file=sys.stderr)


if __name__ == "__main__":
    main()
