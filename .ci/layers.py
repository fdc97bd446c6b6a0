"""Checks that kenar-chat's modules only use the modules below them (docs/architecture.md).

Reads every `crate::…` path in src/ and fails, naming the file, when a module reaches one it may
not (which is how an import cycle starts). Run from the repository root: python3 .ci/layers.py"""
import glob
import re
import sys

# module -> the modules it may use. Keep in step with docs/architecture.md.
ALLOWED = {
    "crypto": set(),
    "observe": set(),
    "domain": set(),
    "config": {"crypto"},
    "telemetry": {"config"},
    "db": {"crypto", "domain"},
    "services": {"config", "crypto", "db", "domain", "observe"},
    "worker": {"config", "db", "domain", "observe", "services"},
    "state": {"config", "db", "services"},
    "web": {"config", "db", "domain", "observe", "services", "state"},
    "startup": {"config", "crypto", "db", "observe", "services", "state", "web", "worker"},
    "sandbox": {"config", "startup"},
    "cli": {"config", "db", "sandbox", "startup", "telemetry"},
    "lib": set(),
    "main": set(),
}


def used_modules(source):
    """Top-level module names after `crate::`, also inside `use crate::{a, b::{c}}` groups."""
    found = set(re.findall(r"crate::([a-z_]+)", source))
    for group in re.finditer(r"crate::\{(.*?)\};", source, re.S):
        depth, current = 0, ""
        for ch in group.group(1) + ",":
            depth += ch == "{"
            depth -= ch == "}"
            if ch == "," and depth == 0:
                found.add(re.match(r"\s*([a-z_]*)", current).group(1))
                current = ""
            else:
                current += ch
    return {name for name in found if name}


problems = []
for path in sorted(glob.glob("src/**/*.rs", recursive=True)):
    module = path[len("src/"):].split("/")[0].removesuffix(".rs")
    if module not in ALLOWED:
        problems.append(f"{path}: module `{module}` is not in the layer table of .ci/layers.py")
        continue
    with open(path, encoding="utf-8") as f:
        for used in sorted(used_modules(f.read()) - {module} - ALLOWED[module]):
            problems.append(f"{path}: `{module}` may not use `crate::{used}`")
for problem in problems:
    print(f"layers: {problem}", file=sys.stderr)
if problems:
    sys.exit(1)
print(f"layers: ok ({len(ALLOWED)} modules, no module uses one above it)")
