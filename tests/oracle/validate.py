"""The conformance oracle: validates HTTP requests recorded by tests/openapi_oracle.rs
against their OpenAPI document with openapi-core (an independent implementation).

Reads JSON lines from the file given as argv[1], one request per line:
  {"id": str, "spec": path, "version": "3.0"|"3.1", "server": base URL the document
   prescribes for the operation (scheme, host, base path), "method": str, "path": path as
   sent (after the base path), "query": raw query string, "headers": [[name, value], ...],
   "body_b64": str}
Prints one JSON line per record to stdout:
  {"id": str, "ok": bool, "error": str|null, "unsupported": str|null}
`unsupported` is set when openapi-core cannot load the document at all.
"""

import base64
import json
import pathlib
import sys
import traceback
from urllib.parse import urlsplit

from jsonschema_path import SchemaPath
from openapi_core.contrib.werkzeug import WerkzeugOpenAPIRequest
from openapi_core.validation.request.validators import (
    V30RequestBodyValidator,
    V30RequestParametersValidator,
    V31RequestBodyValidator,
    V31RequestParametersValidator,
)
from werkzeug.test import EnvironBuilder
from werkzeug.wrappers import Request

# Parameters and body, not security: the test calls without credentials (outbound
# credentials are tested in tests/auth.rs and tests/http_target.rs).
VALIDATORS = {
    "3.0": (V30RequestParametersValidator, V30RequestBodyValidator),
    "3.1": (V31RequestParametersValidator, V31RequestBodyValidator),
}


def describe(error):
    """The error and its causes, one line."""
    parts = []
    seen = set()
    while error is not None and id(error) not in seen:
        seen.add(id(error))
        text = f"{type(error).__name__}: {error}"
        inner = getattr(error, "schema_errors", None)
        if inner:
            text += " [" + "; ".join(str(e.message) for e in inner) + "]"
        parts.append(text)
        error = error.__cause__ or error.__context__
    return " <- ".join(parts)


def load_spec(path):
    # jsonschema-path reads every file with a YAML loader, which rejects some valid JSON
    # (Twilio's); JSON files are read as JSON, with the same base URI for relative refs.
    if path.endswith(".json"):
        with open(path, encoding="utf-8") as f:
            data = json.load(f)
        return SchemaPath.from_dict(data, base_uri=pathlib.Path(path).resolve().as_uri())
    return SchemaPath.from_file_path(path)


def main():
    specs = {}
    out = sys.stdout
    with open(sys.argv[1], encoding="utf-8") as lines:
        for line in lines:
            record = json.loads(line)
            verdict = {"id": record["id"], "ok": False, "error": None, "unsupported": None}
            key = (record["spec"], record["version"])
            if key not in specs:
                try:
                    specs[key] = ("ok", load_spec(record["spec"]))
                except Exception as e:  # noqa: BLE001 - reported, not hidden
                    specs[key] = ("unsupported", f"openapi-core cannot load the document: {describe(e)}")
            state, spec = specs[key]
            if state != "ok":
                verdict["unsupported"] = spec
                out.write(json.dumps(verdict) + "\n")
                continue
            try:
                server = urlsplit(record["server"])
                host = f"{server.scheme}://{server.netloc}"
                builder = EnvironBuilder(
                    method=record["method"],
                    base_url=host,
                    path=server.path.rstrip("/") + record["path"],
                    query_string=record["query"],
                    headers=record["headers"],
                    data=base64.b64decode(record["body_b64"]),
                )
                request = WerkzeugOpenAPIRequest(Request(builder.get_environ()))
                for validator in VALIDATORS[record["version"]]:
                    validator(spec, base_url=host).validate(request)
                verdict["ok"] = True
            except Exception as e:  # noqa: BLE001 - every failure is a verdict
                verdict["error"] = describe(e)
                if not str(e):
                    verdict["error"] += " " + traceback.format_exc(limit=3).replace("\n", " | ")
            out.write(json.dumps(verdict) + "\n")
            out.flush()


if __name__ == "__main__":
    main()
