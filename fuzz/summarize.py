"""Summarises one schemathesis run of fuzz/run-schemathesis.sh.

Reads schemathesis' NDJSON event report (the client's view: every test case, the checks run on it,
and the request/response pair it recorded) and the service's JSON log (the server's view: one
"request served" line per answered request, with its status). Prints what was sent and what failed,
and writes "PASSED FAILED REQUESTS SERVED" to --counts for the shell script to add up.

Usage: summarize.py --label L --ndjson FILE --service-log FILE --counts FILE
                    --schemathesis-rc N [--service-died] [--timed-out]
"""

from __future__ import annotations

import argparse
import base64
import collections
import json
import sys
from pathlib import Path


def body_excerpt(message: dict | None, limit: int = 200) -> str:
    """The body of a recorded request or response, decoded and cut to `limit` characters."""
    if not message:
        return ""
    raw = message.get("body") if "body" in message else message.get("content")
    if isinstance(raw, dict) and "$base64" in raw:
        text = base64.b64decode(raw["$base64"]).decode("utf-8", "replace")
    elif raw is None:
        return ""
    else:
        text = str(raw)
    return text if len(text) <= limit else text[:limit] + "…"


def read_ndjson(path: Path) -> dict:
    cases_passed = cases_failed = 0
    requests = 0
    no_response: list[dict] = []
    by_class: collections.Counter[str] = collections.Counter()
    server_errors: list[dict] = []
    failed_checks: collections.Counter[str] = collections.Counter()
    errors: list[str] = []
    operations: set[str] = set()
    if not path.exists():
        return {"missing": True}
    with path.open(encoding="utf-8") as f:
        for line in f:
            event = json.loads(line)
            (kind, data), = event.items()
            if kind in ("ScenarioFinished", "FuzzScenarioFinished"):
                recorder = data.get("recorder") or {}
                if data.get("status") == "error":
                    errors.append(f"{recorder.get('label', '?')}: scenario ended with an error")
                for case_id, checks in (recorder.get("checks") or {}).items():
                    if any(c.get("status") == "failure" for c in checks):
                        cases_failed += 1
                        for c in checks:
                            if c.get("status") == "failure":
                                failed_checks[c.get("name", "?")] += 1
                    else:
                        cases_passed += 1
                label = str(recorder.get("label", ""))
                if recorder.get("checks") and label.split(" ", 1)[0].isupper() and " /" in label:
                    operations.add(label)
                for interaction in (recorder.get("interactions") or {}).values():
                    requests += 1
                    request = interaction.get("request") or {}
                    response = interaction.get("response")
                    if response is None:
                        no_response.append(request)
                        continue
                    status = int(response.get("status_code", 0))
                    by_class[f"{status // 100}xx"] += 1
                    if status >= 500:
                        server_errors.append({"request": request, "response": response})
            elif kind in ("NonFatalError", "FatalError"):
                info = data.get("info") or data.get("value") or {}
                label = data.get("label") or ""
                message = info.get("message") if isinstance(info, dict) else None
                errors.append(f"{kind} {label}: {message or json.dumps(data)[:500]}".strip())
    return {
        "missing": False,
        "cases_passed": cases_passed,
        "cases_failed": cases_failed,
        "requests": requests,
        "no_response": no_response,
        "by_class": by_class,
        "server_errors": server_errors,
        "failed_checks": failed_checks,
        "errors": errors,
        "operations": operations,
    }


def read_service_log(path: Path) -> dict:
    served = 0
    by_class: collections.Counter[str] = collections.Counter()
    server_errors: list[str] = []
    panics: list[str] = []
    if path.exists():
        with path.open(encoding="utf-8", errors="replace") as f:
            for line in f:
                try:
                    record = json.loads(line)
                except ValueError:
                    continue
                if record.get("message") == "request served":
                    served += 1
                    status = int(record.get("status", 0))
                    by_class[f"{status // 100}xx"] += 1
                    if status >= 500:
                        server_errors.append(line.strip())
                elif "panic" in str(record.get("message", "")).lower():
                    panics.append(line.strip())
    return {"served": served, "by_class": by_class, "server_errors": server_errors, "panics": panics}


def capped(lines: list[str], what: str, limit: int = 10) -> list[str]:
    """At most `limit` lines, then one saying how many more there were."""
    if len(lines) <= limit:
        return lines
    return lines[:limit] + [f"… and {len(lines) - limit} more {what} (see the NDJSON report)"]


def classes(counter: collections.Counter[str]) -> str:
    keys = sorted(set(counter) | {"2xx", "4xx", "5xx"})
    return ", ".join(f"{k} {counter[k]}" for k in keys)


def main() -> int:
    p = argparse.ArgumentParser()
    p.add_argument("--label", required=True)
    p.add_argument("--ndjson", type=Path, required=True)
    p.add_argument("--service-log", type=Path, required=True)
    p.add_argument("--counts", type=Path, required=True)
    p.add_argument("--schemathesis-rc", type=int, required=True)
    p.add_argument("--service-died", action="store_true")
    p.add_argument("--timed-out", action="store_true")
    args = p.parse_args()

    client = read_ndjson(args.ndjson)
    server = read_service_log(args.service_log)
    tag = f"fuzz[{args.label}]"
    problems: list[str] = []

    if client["missing"]:
        problems.append("schemathesis wrote no event report")
        client = {"cases_passed": 0, "cases_failed": 0, "requests": 0, "no_response": [],
                  "by_class": collections.Counter(), "server_errors": [],
                  "failed_checks": collections.Counter(), "errors": [], "operations": set()}

    listed = capped(
        [f"5xx: {i['request'].get('method')} {i['request'].get('uri')} "
         f"body={body_excerpt(i['request'])!r} -> {i['response'].get('status_code')} "
         f"{body_excerpt(i['response'])!r}" for i in client["server_errors"]],
        "responses with a 5xx status")
    problems.extend(listed)
    if server["server_errors"] and not client["server_errors"]:
        problems.extend(capped([f"5xx in the service log: {line[:500]}"
                                for line in server["server_errors"]], "5xx lines in the service log"))
    problems.extend(capped(
        [f"no response (dropped connection or timeout): {r.get('method')} {r.get('uri')} "
         f"body={body_excerpt(r)!r}" for r in client["no_response"]],
        "requests without a response"))
    problems.extend(f"service panic: {line[:500]}" for line in server["panics"])
    problems.extend(client["errors"])
    for name, n in sorted(client["failed_checks"].items()):
        problems.append(f"check {name} failed on {n} test case(s)")
    if args.service_died:
        problems.append("the service exited during the run")
    if args.timed_out:
        problems.append("the run hit FUZZ_TIMEOUT and was stopped")
    if args.schemathesis_rc != 0:
        problems.append(f"schemathesis exited with {args.schemathesis_rc}")

    failed = client["cases_failed"] + len(client["errors"])
    # Anything that fails the run must show as at least one failure in the closing line.
    if problems and failed == 0:
        failed = 1
    passed = client["cases_passed"]

    print(f"{tag}: {client['requests']} requests made by schemathesis "
          f"({classes(client['by_class'])}, {len(client['no_response'])} without a response); "
          f"{server['served']} answered by the service ({classes(server['by_class'])})")
    print(f"{tag}: {passed + client['cases_failed']} test cases over "
          f"{len(client['operations'])} operations, {client['cases_failed']} of them with a failed check")
    for problem in problems:
        print(f"{tag}: FAILURE: {problem}")
    args.counts.write_text(f"{passed} {failed} {client['requests']} {server['served']}\n")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
