#!/usr/bin/env python3
"""Summarises one meson testlog.json for scripts/test.sh.

Counts GoogleTest cases when a test binary printed a gtest summary, else whole meson tests.
A binary that fails outside its cases (sanitizer report at exit, leak, crash, timeout) counts
as one more failure. Prints failures and every skipped case with the reason the test gave,
then a last line "COUNTS passed failed skipped" for test.sh to add up.

With --retryable LOG: one line "NAME<TAB>FAILED<TAB>FILTER" per test binary whose only failures
are GoogleTest assertions (a summary printed, exit code 1): NAME for `meson test`, FAILED its
failed cases, FILTER a --gtest_filter of them. Crashes, sanitizer reports, timeouts and
binaries without a summary are never listed: they are not retried.
"""
import json
import re
import sys

PASSED = re.compile(r"^\[  PASSED  \] (\d+) tests?\.", re.M)
SKIPPED = re.compile(r"^\[  SKIPPED \] (\d+) tests?, listed below:", re.M)
FAILED = re.compile(r"^\[  FAILED  \] (\d+) tests?, listed below:", re.M)
SKIPPED_CASE = re.compile(r"^\[  SKIPPED \] (\S+) \(", re.M)
FAILED_CASE = re.compile(r"^\[  FAILED  \] (\S+) \(", re.M)
OK_RESULTS = {"OK", "EXPECTEDFAIL"}


def skip_reason(out, case):
    """The message GTEST_SKIP() printed for `case`: the lines after its "Skipped" marker."""
    start = out.find("[ RUN      ] " + case)
    end = out.find("[  SKIPPED ] " + case, start)
    if start < 0 or end < 0:
        return ""
    lines = [l.strip() for l in out[start:end].splitlines()[1:]]
    lines = [l for l in lines if l and not l.endswith(": Skipped")]
    return " ".join(lines)[:300]


def retryable(path):
    for l in open(path):
        if not l.strip():
            continue
        e = json.loads(l)
        out = e.get("stdout") or ""
        cases = list(dict.fromkeys(FAILED_CASE.findall(out)))
        if (e["result"] == "FAIL" and e.get("returncode") == 1 and PASSED.search(out)
                and FAILED.search(out) and cases):
            print(f"{e['name'].split(' / ')[-1]}\t{len(cases)}\t{':'.join(cases)}")


def main():
    if sys.argv[1] == "--retryable":
        retryable(sys.argv[2])
        return
    path, stage = sys.argv[1], sys.argv[2]
    passed = failed = skipped = 0
    try:
        entries = [json.loads(l) for l in open(path) if l.strip()]
    except FileNotFoundError:
        entries = []
    for e in entries:
        name, result, out = e["name"], e["result"], e.get("stdout") or ""
        m = PASSED.search(out)
        if m:  # a GoogleTest binary that ran to its summary
            p = int(m.group(1))
            s = int(SKIPPED.search(out).group(1)) if SKIPPED.search(out) else 0
            f = int(FAILED.search(out).group(1)) if FAILED.search(out) else 0
            for case in dict.fromkeys(SKIPPED_CASE.findall(out)):
                print(f"  [{stage}] SKIP {name}: {case}: {skip_reason(out, case) or 'no reason given'}")
            for case in dict.fromkeys(FAILED_CASE.findall(out)):
                print(f"  [{stage}] FAIL {name}: {case}")
            if result not in OK_RESULTS and f == 0:
                f = 1
                print(f"  [{stage}] FAIL {name}: {result} after its cases ran "
                      f"(exit code {e.get('returncode')}; sanitizer report or crash at exit?)")
            passed, skipped, failed = passed + p, skipped + s, failed + f
        elif result in OK_RESULTS:
            passed += 1
        elif result == "SKIP":
            skipped += 1
            print(f"  [{stage}] SKIP {name}: {out.strip().splitlines()[-1] if out.strip() else 'exit code 77'}")
        else:
            failed += 1
            print(f"  [{stage}] FAIL {name}: {result} (exit code {e.get('returncode')})")
    print(f"COUNTS {passed} {failed} {skipped}")


if __name__ == "__main__":
    main()
