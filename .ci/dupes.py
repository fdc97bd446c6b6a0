"""Finds copies: python3 .ci/dupes.py [--min-lines N]

1. A run of MIN_LINES or more identical lines, within a file or across files: lines are compared
   stripped of surrounding white space; blank lines and lines of punctuation only (`}`, `});`,
   `*/`) are skipped, so a run may span them. Looks at the source files (.rs .html .css .js .py
   .sh .sql) git tracks under ROOTS.
2. Two files of the repository with the same bytes (fonts, licences, images: what no line scan
   sees), except small ones.

Exits 1 on a copy not in KNOWN."""
import hashlib
import os
import re
import subprocess
import sys
from collections import defaultdict

ROOTS = ["src", "crates", "templates", "static", "benches"]
EXTENSIONS = (".rs", ".html", ".css", ".js", ".py", ".sh", ".sql")
MIN_LINES = 10
SMALL_FILE = 256  # bytes; smaller identical files (an empty __init__.py, `.gitkeep`) are fine

# Known runs left for later, each the pair of files a run joins (one file twice for a run repeated
# inside it), e.g. ("src/web/routes/a.rs", "src/web/routes/b.rs"). While this list is non-empty
# the check warns and passes; an entry that no longer matches is reported as stale. It is empty:
# when the check came, the only runs were in crates/ and benches/, and those were removed. Keep
# it empty.
KNOWN = set()

PUNCTUATION_ONLY = re.compile(r"^[\W_]*$")


def tracked_files(*roots):
    out = subprocess.run(
        ["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard", "--", *roots],
        check=True,
        capture_output=True,
        text=True,
    ).stdout
    return sorted(p for p in out.split("\0") if p and os.path.isfile(p))


def identical_files():
    """Groups of files (all of the repository's) that have the same bytes."""
    by_hash = defaultdict(list)
    for path in tracked_files():
        if os.path.getsize(path) >= SMALL_FILE:
            with open(path, "rb") as f:
                by_hash[hashlib.sha256(f.read()).digest()].append(path)
    return [paths for paths in by_hash.values() if len(paths) > 1]


def significant_lines(path):
    """(stripped text, line number) of the lines that count."""
    lines = []
    with open(path, encoding="utf-8", errors="replace") as f:
        for number, line in enumerate(f, start=1):
            text = " ".join(line.split())
            if text and not PUNCTUATION_ONLY.match(text):
                lines.append((text, number))
    return lines


def find_runs(files, min_lines):
    """Maximal runs of >= min_lines identical significant lines: [(lines, (path, i), (path, j))],
    where i, j index the files' significant lines and (path, i) < (path, j)."""
    windows = defaultdict(list)
    for path, lines in files.items():
        for i in range(len(lines) - min_lines + 1):
            key = hashlib.blake2b("\n".join(t for t, _ in lines[i : i + min_lines]).encode(), digest_size=16).digest()
            windows[key].append((path, i))
    # Pairs of places whose windows are equal; a run is a chain of such pairs, both sides moving on
    # by one line. Keep only the chains' first windows.
    pairs = set()
    for places in windows.values():
        if len(places) < 2:
            continue
        for a in range(len(places)):
            for b in range(a + 1, len(places)):
                pairs.add((places[a], places[b]))
    runs = []
    for (pa, ia), (pb, ib) in sorted(pairs):
        if ((pa, ia - 1), (pb, ib - 1)) in pairs:
            continue  # inside a run that started earlier
        length = min_lines
        while ((pa, ia + length - min_lines + 1), (pb, ib + length - min_lines + 1)) in pairs:
            length += 1
        if pa == pb and ib < ia + length:
            length = ib - ia  # a run overlapping its own copy: count the repeated part once
            if length < min_lines:
                continue
        runs.append((length, (pa, ia), (pb, ib)))
    return runs


def main():
    os.chdir(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    min_lines = MIN_LINES
    if len(sys.argv) == 3 and sys.argv[1] == "--min-lines":
        min_lines = int(sys.argv[2])
    files = {path: significant_lines(path) for path in tracked_files(*ROOTS) if path.endswith(EXTENSIONS)}
    problems, known_hits = [], set()
    for paths in identical_files():
        problems.append(f"same bytes: {' = '.join(paths)} (keep one file and point to it)")
    for length, (pa, ia), (pb, ib) in sorted(find_runs(files, min_lines), key=lambda r: (-r[0], r[1], r[2])):
        a, b = files[pa], files[pb]
        where = (
            f"{pa}:{a[ia][1]}-{a[ia + length - 1][1]} = {pb}:{b[ib][1]}-{b[ib + length - 1][1]} "
            f"({length} lines, first: {a[ia][0][:60]!r})"
        )
        key = (pa, pb)
        if key in KNOWN:
            known_hits.add(key)
            print(f"dupes: warning: known: {where}", file=sys.stderr)
        else:
            problems.append(where)
    for problem in problems:
        print(f"dupes: {problem}", file=sys.stderr)
    if known_hits:
        print(f"dupes: warning: {len(known_hits)} known pair(s) allowed by KNOWN in .ci/dupes.py (issue 20 removes them)", file=sys.stderr)
    for stale in sorted(set(KNOWN) - known_hits):
        print(f"dupes: warning: KNOWN entry no longer found, remove it: {stale}", file=sys.stderr)
    if problems:
        print(f"dupes: {len(problems)} repeated run(s) of {min_lines}+ lines: make them one function, partial or rule", file=sys.stderr)
        sys.exit(1)
    print(f"dupes: ok ({len(files)} files under {', '.join(ROOTS)}; no run of {min_lines}+ identical lines outside KNOWN)")


if __name__ == "__main__":
    main()
