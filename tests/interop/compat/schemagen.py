"""The simplest value valid for a JSON Schema (also an OpenAPI 2.0/3.x schema object).

Used twice by the compatibility judge: for tool arguments (from a tool's `inputSchema`:
required properties only, optional ones left out) and, by the suite's upstream, for answers
(from the operation's 2xx response schema). Local `$ref`s (`#/...`) resolve against `root`.
Best effort: the caller validates the result where it matters (arguments, with jsonschema).
"""

import re
import sre_constants as C
import sre_parse

FORMATS = {
    "date-time": "2024-01-01T00:00:00Z",
    "date": "2024-01-01",
    "time": "00:00:00Z",
    "email": "a@example.com",
    "idn-email": "a@example.com",
    "uri": "https://example.com",
    "url": "https://example.com",
    "uri-reference": "https://example.com",
    "iri": "https://example.com",
    "hostname": "example.com",
    "ipv4": "127.0.0.1",
    "ipv6": "::1",
    "uuid": "00000000-0000-0000-0000-000000000000",
    "byte": "YQ==",
    "binary": "a",
    "password": "a",
    "duration": "P1D",
    "phone": "+15555550100",
}


def resolve(schema, root, seen=()):
    """Follows local `$ref`s; returns (schema, seen-refs)."""
    while isinstance(schema, dict) and isinstance(schema.get("$ref"), str):
        ref = schema["$ref"]
        if ref in seen or not ref.startswith("#"):
            return {}, seen
        seen = seen + (ref,)
        target = root
        for part in ref[1:].split("/")[1:] if ref != "#" else []:
            part = part.replace("~1", "/").replace("~0", "~")
            if isinstance(target, dict) and part in target:
                target = target[part]
            elif isinstance(target, list) and part.isdigit() and int(part) < len(target):
                target = target[int(part)]
            else:
                return {}, seen
        rest = {k: v for k, v in schema.items() if k != "$ref"}
        schema = {**target, **rest} if isinstance(target, dict) and rest else target
    return schema, seen


def from_pattern(pattern):
    """A short string matching an ECMA-262-ish regular expression (None if unsupported)."""
    try:
        parsed = sre_parse.parse(pattern)
    except Exception:
        return None

    def gen(items):
        out = []
        for op, arg in items:
            if op is C.LITERAL:
                out.append(chr(arg))
            elif op is C.NOT_LITERAL:
                out.append("a" if chr(arg) != "a" else "b")
            elif op is C.ANY:
                out.append("a")
            elif op is C.IN:
                out.append(pick_in(arg))
            elif op in (C.MAX_REPEAT, C.MIN_REPEAT):
                low, _high, sub = arg
                out.append(gen(sub) * low)
            elif op is C.SUBPATTERN:
                out.append(gen(arg[-1]))
            elif op is C.BRANCH:
                out.append(gen(arg[1][0]))
            elif op is C.AT:
                pass
            elif op is C.CATEGORY:
                out.append(category(arg))
            elif op in (C.ASSERT, C.ASSERT_NOT):
                pass
            else:
                raise ValueError(op)
        return "".join(out)

    def category(cat):
        return {C.CATEGORY_DIGIT: "0", C.CATEGORY_SPACE: " ", C.CATEGORY_WORD: "a",
                C.CATEGORY_NOT_DIGIT: "a", C.CATEGORY_NOT_SPACE: "a", C.CATEGORY_NOT_WORD: "-"}.get(cat, "a")

    def pick_in(items):
        if items and items[0][0] is C.NEGATE:
            excluded = set()
            for op, arg in items[1:]:
                if op is C.LITERAL:
                    excluded.add(chr(arg))
                elif op is C.RANGE:
                    excluded.update(chr(c) for c in range(arg[0], arg[1] + 1))
            return next(c for c in "aA0_-xyz" if c not in excluded)
        for op, arg in items:
            if op is C.LITERAL:
                return chr(arg)
            if op is C.RANGE:
                return chr(arg[0])
            if op is C.CATEGORY:
                return category(arg)
        return "a"

    try:
        value = gen(parsed)
    except Exception:
        return None
    try:
        return value if re.search(pattern, value) else None
    except re.error:
        return value


def generate(schema, root, depth=0, seen=(), required_only=True):
    """The simplest value of `schema`; required properties only (`required_only`)."""
    schema, seen = resolve(schema, root, seen)
    if schema is True or not isinstance(schema, dict) or depth > 12:
        return {} if depth == 0 else None
    if "const" in schema:
        return schema["const"]
    if isinstance(schema.get("enum"), list) and schema["enum"]:
        non_null = [v for v in schema["enum"] if v is not None]
        return non_null[0] if non_null else None
    if "allOf" in schema:
        merged = {k: v for k, v in schema.items() if k != "allOf"}
        value = generate(merged, root, depth, seen, required_only) if merged.get("type") or merged.get("properties") else None
        for part in schema["allOf"]:
            part_value = generate(part, root, depth + 1, seen, required_only)
            if isinstance(part_value, dict) and isinstance(value, dict):
                value = {**value, **part_value}
            elif value is None:
                value = part_value
        return value
    for key in ("oneOf", "anyOf"):
        if isinstance(schema.get(key), list) and schema[key]:
            base = {k: v for k, v in schema.items() if k != key}
            branches = [b for b in schema[key] if resolve(b, root, seen)[0].get("type") != "null"] or schema[key]
            branch = branches[0]
            branch_value = generate(branch, root, depth + 1, seen, required_only)
            if (base.get("properties") or base.get("required")) and isinstance(branch_value, dict):
                base_value = generate(base, root, depth, seen, required_only)
                if isinstance(base_value, dict):
                    return {**base_value, **branch_value}
            return branch_value
    kind = schema.get("type")
    if isinstance(kind, list):
        kind = next((k for k in kind if k != "null"), "null")
    if kind is None:
        if "properties" in schema or "required" in schema or "additionalProperties" in schema:
            kind = "object"
        elif "items" in schema:
            kind = "array"
        else:
            return {} if depth == 0 else "a"
    if kind == "object":
        properties = schema.get("properties") or {}
        names = list(schema.get("required") or []) if required_only else list(properties)
        value = {}
        for name in names:
            sub = properties.get(name)
            if sub is None:
                extra = schema.get("additionalProperties")
                sub = extra if isinstance(extra, dict) else {"type": "string"}
            value[name] = generate(sub, root, depth + 1, seen, required_only)
        for name in (schema.get("dependentRequired") or {}):
            pass  # only triggered by optional properties, which are left out
        want = schema.get("minProperties") or 0
        for name in properties:
            if len(value) >= want:
                break
            value.setdefault(name, generate(properties[name], root, depth + 1, seen, required_only))
        return value
    if kind == "array":
        items = schema.get("items")
        if isinstance(schema.get("prefixItems"), list):
            return [generate(s, root, depth + 1, seen, required_only) for s in schema["prefixItems"][: schema.get("minItems", 0) or 0]]
        count = schema.get("minItems") or 0
        return [generate(items if isinstance(items, dict) else {}, root, depth + 1, seen, required_only) for _ in range(count)]
    if kind == "string":
        if "default" in schema and isinstance(schema["default"], str):
            return schema["default"]
        if isinstance(schema.get("pattern"), str):
            value = from_pattern(schema["pattern"])
            if value is not None:
                return value
        value = FORMATS.get(schema.get("format"), "a")
        low, high = schema.get("minLength"), schema.get("maxLength")
        if isinstance(low, int) and len(value) < low:
            value = value + "a" * (low - len(value))
        if isinstance(high, int) and len(value) > high:
            value = value[:high]
        return value
    if kind in ("integer", "number"):
        low = schema.get("minimum")
        xlow = schema.get("exclusiveMinimum")
        high = schema.get("maximum")
        value = 0
        if isinstance(low, (int, float)) and not isinstance(low, bool):
            value = low
            if xlow is True:  # OpenAPI 3.0 boolean form
                value = low + 1
        if isinstance(xlow, (int, float)) and not isinstance(xlow, bool):
            value = max(value, xlow + 1) if kind == "integer" else max(value, xlow + 0.5)
        if isinstance(high, (int, float)) and not isinstance(high, bool) and value > high:
            value = high
        step = schema.get("multipleOf")
        if isinstance(step, (int, float)) and step and value % step:
            value = (int(value / step) + 1) * step
        if kind == "integer":
            value = int(value)
        return value
    if kind == "boolean":
        return False
    if kind == "null":
        return None
    return "a"
