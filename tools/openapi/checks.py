"""The Python halves of tools/openapi/check.sh (run with the project's .venv).

    checks.py spec DOC            openapi-spec-validator, every error; and every $ref resolves
    checks.py lint-report JSON    Redocly's `lint --format json` output, one line per problem;
                                  fails on any error or warning
    checks.py client DOC DIR      every operation in DOC has an endpoint in the client that
                                  openapi-python-client generated into DIR

Each prints its problems one per line and exits 1 when there are any.
"""

import json
import re
import sys
from pathlib import Path

METHODS = ("get", "put", "post", "delete", "options", "head", "patch", "trace")


def short(text, limit=300):
    text = " ".join(str(text).split())
    return text if len(text) <= limit else text[: limit - 1] + "…"


def pointer(doc, ref):
    """The value at a local JSON pointer (`#/a/b`), or raises KeyError/IndexError/TypeError."""
    node = doc
    for part in ref[2:].split("/") if ref != "#" else []:
        part = part.replace("~1", "/").replace("~0", "~")
        node = node[int(part)] if isinstance(node, list) else node[part]
    return node


def unresolved_refs(doc):
    problems = []

    def walk(node, where):
        if isinstance(node, dict):
            ref = node.get("$ref")
            if isinstance(ref, str):
                if not ref.startswith("#"):
                    problems.append(f"{where}: $ref {ref} is not local to the document")
                else:
                    try:
                        pointer(doc, ref)
                    except (KeyError, IndexError, TypeError, ValueError):
                        problems.append(f"{where}: $ref {ref} does not resolve")
            for key, value in node.items():
                walk(value, f"{where}/{str(key).replace('~', '~0').replace('/', '~1')}")
        elif isinstance(node, list):
            for i, value in enumerate(node):
                walk(value, f"{where}/{i}")

    walk(doc, "#")
    return problems


def spec(path):
    from openapi_spec_validator import validate
    from openapi_spec_validator.validation.exceptions import OpenAPIValidationError

    doc = json.loads(Path(path).read_text())
    problems = [f"unresolved reference: {p}" for p in unresolved_refs(doc)]
    try:
        validate(doc)  # checks the version first, then every rule
        errors = []
    except OpenAPIValidationError:
        errors = None
    except Exception as error:  # referencing errors: a $ref that points nowhere
        ref = getattr(error, "ref", None)
        what = f"$ref {ref} does not resolve" if ref else short(error)
        problems.append(f"openapi-spec-validator: {type(error).__name__}: {what}")
        errors = []
    if errors is None:  # list every validation error, not only the first
        from openapi_spec_validator import OpenAPIV30SpecValidator, OpenAPIV31SpecValidator

        cls = OpenAPIV31SpecValidator if str(doc.get("openapi", "")).startswith("3.1") else OpenAPIV30SpecValidator
        try:
            errors = list(cls(doc).iter_errors())
        except Exception as error:
            problems.append(f"openapi-spec-validator: {type(error).__name__}: {short(error)}")
            errors = []
        for error in errors:
            where = "/".join(str(p).replace("~", "~0").replace("/", "~1") for p in getattr(error, "absolute_path", []) or [])
            message = re.split(r"\s+Failed validating", str(getattr(error, "message", error)))[0]
            problems.append(f"openapi-spec-validator: {short(message)} (at #/{where})")
    for p in problems:
        print(f"  {p}")
    return 1 if problems else 0


def lint_report(path):
    report = json.loads(Path(path).read_text())
    totals = report.get("totals", {})
    for p in report.get("problems", []):
        locations = p.get("location") or [{}]
        where = locations[0].get("pointer", "?")
        print(f"  {p.get('severity', '?')} {p.get('ruleId', '?')} at {where}: {short(p.get('message', ''))}")
    errors, warnings = totals.get("errors", 0), totals.get("warnings", 0)
    print(f"  redocly: {errors} errors, {warnings} warnings")
    return 1 if errors or warnings else 0


def normalize(path):
    return re.sub(r"\{[^}]*\}", "{}", path)


def client(doc_path, out_dir):
    doc = json.loads(Path(doc_path).read_text())
    wanted = {}
    for path, item in (doc.get("paths") or {}).items():
        for method in METHODS:
            op = (item or {}).get(method)
            if isinstance(op, dict):
                wanted[(method, normalize(path))] = (method.upper(), path, op.get("operationId"))
    generated = set()
    for module in Path(out_dir).rglob("api/**/*.py"):
        text = module.read_text()
        method = re.search(r'"method": "(\w+)"', text)
        url = re.search(r'"url": f?"([^"]*)"', text)
        if method and url and "def sync_detailed(" in text:
            generated.add((method.group(1).lower(), normalize(url.group(1))))
    missing = [wanted[k] for k in sorted(wanted) if k not in generated]
    for method, path, operation_id in missing:
        print(f"  no generated endpoint for {method} {path} (operationId {operation_id})")
    print(f"  client: {len(wanted) - len(missing)} of {len(wanted)} operations generated")
    return 1 if missing or not wanted else 0


if __name__ == "__main__":
    commands = {"spec": (spec, 1), "lint-report": (lint_report, 1), "client": (client, 2)}
    if len(sys.argv) < 2 or sys.argv[1] not in commands or len(sys.argv) != commands[sys.argv[1]][1] + 2:
        sys.exit(__doc__)
    function, _ = commands[sys.argv[1]]
    sys.exit(function(*sys.argv[2:]))
