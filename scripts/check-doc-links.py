"""Checks that every relative link in README.md and docs/*.md resolves: the file exists and, when
the link has a #fragment, the target file has a heading with that GitHub anchor.

    python3 scripts/check-doc-links.py [files...]      # exit 1 and one line per broken link

Links to http(s), mailto and the like are not followed. Links inside fenced code blocks and
inline code are ignored.
"""

import pathlib
import re
import sys

ROOT = pathlib.Path(__file__).resolve().parent.parent
LINK = re.compile(r"!?\[(?:[^\[\]]|\[[^\]]*\])*\]\(\s*<?([^)\s>]+)>?(?:\s+\"[^\"]*\")?\s*\)")
HEADING = re.compile(r"^(#{1,6})\s+(.*?)\s*#*\s*$")


def prose_lines(text, keep_code=False):
    """The lines outside fenced code blocks, with inline code removed unless keep_code."""
    fenced = False
    for number, line in enumerate(text.splitlines(), 1):
        if line.lstrip().startswith(("```", "~~~")):
            fenced = not fenced
            continue
        if not fenced:
            yield number, line if keep_code else re.sub(r"`[^`]*`", "", line)


def anchors(path):
    """GitHub's anchors for the headings of a Markdown file."""
    seen = {}
    result = set()
    for _, line in prose_lines(path.read_text(encoding="utf-8"), keep_code=True):
        match = HEADING.match(line)
        if not match:
            continue
        text = re.sub(r"\[([^\]]*)\]\([^)]*\)", r"\1", match.group(2))  # a link's text only
        slug = re.sub(r"[^\w\- ]", "", text.strip().lower()).replace(" ", "-")
        count = seen.get(slug, 0)
        seen[slug] = count + 1
        result.add(slug if count == 0 else f"{slug}-{count}")
    return result


def links(path):
    """(line, target) of every link and image in the prose of a Markdown file; a link's text may
    span lines."""
    lines = dict(prose_lines(path.read_text(encoding="utf-8")))
    prose = "\n".join(lines.get(n, "") for n in range(1, max(lines, default=0) + 1))
    for match in LINK.finditer(prose):
        yield prose.count("\n", 0, match.start(1)) + 1, match.group(1)


def check(path):
    problems = []
    for number, target in links(path):
        if re.match(r"^[a-z][a-z0-9+.-]*:", target, re.I):
            continue  # http:, https:, mailto:, ...
        file_part, _, fragment = target.partition("#")
        resolved = (path.parent / file_part).resolve() if file_part else path
        where = f"{path.relative_to(ROOT)}:{number}: {target}"
        if not resolved.exists():
            problems.append(f"{where}: no such file")
        elif fragment and resolved.suffix == ".md" and fragment not in anchors(resolved):
            problems.append(f"{where}: no heading #{fragment} in {resolved.relative_to(ROOT)}")
    return problems


def main(argv):
    files = [pathlib.Path(a).resolve() for a in argv] or [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
    problems = [p for f in files for p in check(f)]
    count = sum(1 for f in files for _ in links(f))
    for problem in problems:
        print(problem)
    print(f"{len(files)} files, {count} links, {len(problems)} broken", file=sys.stderr)
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
