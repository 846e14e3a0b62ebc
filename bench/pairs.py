"""bench/pairs.py RUNS A B TITLE: the summary of runs measured in interleaved pairs.

RUNS holds one JSON line per run ({"id", "rps", "p99_ms", "errors"}), as `bench_load --out` and
bench/wrk.sh's `wrk_run` write them, with ids SCENARIO-A-N and SCENARIO-B-N (N counting the
pairs from 1). For each scenario, in the order its runs were written: every pair's B/A ratio of
req/s with both p99s and errors, then the median ratio (with its range) and the median p99s.
Used by bench/ab.sh, calls.sh, redact.sh and webhooks.sh.
"""

import json
import statistics
import sys


def main(path, a, b, title):
    runs = {}
    for line in open(path):
        run = json.loads(line)
        runs[run["id"]] = run
    scenarios = []
    for key in runs:
        parts = key.rsplit("-", 2)
        if len(parts) == 3 and parts[1] in (a, b) and parts[0] not in scenarios:
            scenarios.append(parts[0])
    pairs = {}
    for scenario in scenarios:
        n = 1
        while f"{scenario}-{a}-{n}" in runs and f"{scenario}-{b}-{n}" in runs:
            n += 1
        pairs[scenario] = [(runs[f"{scenario}-{a}-{i}"], runs[f"{scenario}-{b}-{i}"]) for i in range(1, n)]
    count = max((len(p) for p in pairs.values()), default=0)
    print(f"{title}, {count} pairs back to back (req/s ratio, p99 {a} -> {b}, errors)")
    for scenario, measured in pairs.items():
        if not measured:
            continue
        ratios = [y["rps"] / x["rps"] for x, y in measured]
        p99a = statistics.median(x["p99_ms"] for x, _ in measured)
        p99b = statistics.median(y["p99_ms"] for _, y in measured)
        print(f"{scenario}: median ratio {statistics.median(ratios):.2f} (min {min(ratios):.2f}, "
              f"max {max(ratios):.2f}); median p99 {p99a:.2f} -> {p99b:.2f} ms")
        for i, ((x, y), ratio) in enumerate(zip(measured, ratios), 1):
            print(f"  {i}: {x['rps']:8.0f} -> {y['rps']:8.0f} req/s ({ratio:.2f}), "
                  f"p99 {x['p99_ms']:.2f} -> {y['p99_ms']:.2f} ms, "
                  f"errors {x.get('errors', 0)}/{y.get('errors', 0)}")


if __name__ == "__main__":
    if len(sys.argv) != 5:
        sys.exit(__doc__)
    main(*sys.argv[1:])
