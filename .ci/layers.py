"""Checks the workspace's layers and loops (docs/architecture.md): python3 .ci/layers.py

1. No crate loop: the workspace's crates, with normal, build and dev-dependencies, form no cycle
   (from `cargo metadata --no-deps --offline`).
2. No file loop: in every target of every crate (libraries, binaries, tests, benches), no file
   reaches a file that reaches it back, directly or through others. A reference is a `use` or
   a path (`crate::a::b::x`, `super::x`, `self::x`, a child module's name, or a name a `use`
   bound to a module); it counts for the file of the module it names and, through `pub use`
   re-exports, for each file down to the one that defines it. A module's file may use its
   submodules' files (that is how it declares and re-exports them); every other reference
   counts.
3. Layers of kenar-chat (`src/`): each top-level module uses only the modules LAYERS allows it;
   `web` never uses `db`.

Comments and string literals are ignored. Exits 1 on any violation not in KNOWN."""
import json
import os
import subprocess
import sys
from collections import defaultdict

# kenar-chat's modules, bottom up, and the modules each may use (only ones listed above it).
# Keep in step with docs/architecture.md. A module that does not exist yet costs nothing.
LAYERS = [
    ("clock", set()),
    ("crypto", set()),
    ("observe", set()),
    ("domain", {"clock"}),
    ("config", {"crypto"}),
    ("telemetry", {"config"}),
    # db takes `now` from its caller; only the session store, which tower-sessions calls
    # without one, reads the clock itself.
    ("db", {"clock", "crypto", "domain"}),
    ("services", {"clock", "config", "crypto", "db", "domain", "observe"}),
    ("worker", {"clock", "config", "db", "domain", "observe", "services"}),
    ("state", {"clock", "config", "db", "domain", "services"}),
    ("web", {"clock", "config", "domain", "observe", "services", "state"}),
    ("features", {"clock", "config", "db", "domain", "observe", "services", "state", "web"}),
    ("startup", {"clock", "config", "crypto", "db", "domain", "features", "observe", "services", "state", "web", "worker"}),
    ("sandbox", {"clock", "config", "crypto", "startup"}),
    ("cli", {"clock", "config", "db", "sandbox", "startup", "telemetry"}),
]
ALLOWED = dict(LAYERS)
# Arrows that stay forbidden whatever the table says, with the reason printed.
FORBIDDEN = {("web", "db"): "web never uses db: call a use case in services"}
LAYERED_PACKAGE = "kenar-chat"

# Known violations, allowed while they are being removed: the check warns while this is
# non-empty, and reports an entry that no longer matches. Keep it empty; never add to it.
KNOWN: set = set()

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


# ---------------------------------------------------------------------------------------------
# Lexing: identifiers, `::`, brackets and punctuation with their line; comments dropped, string
# literals kept as one ("str", text) token (for `#[path = "..."]`).


def lex(text):
    tokens = []
    i, n, line = 0, len(text), 1
    while i < n:
        c = text[i]
        if c == "\n":
            line += 1
            i += 1
        elif c.isspace():
            i += 1
        elif text.startswith("//", i):
            j = text.find("\n", i)
            i = n if j < 0 else j
        elif text.startswith("/*", i):
            depth, i = 1, i + 2
            while i < n and depth:
                if text.startswith("/*", i):
                    depth, i = depth + 1, i + 2
                elif text.startswith("*/", i):
                    depth, i = depth - 1, i + 2
                else:
                    line += text[i] == "\n"
                    i += 1
        elif c in "rbc" and _raw_string_start(text, i):
            j = i + 1 + (text[i + 1] == "r" and c in "bc")
            hashes = 0
            while text[j] == "#":
                hashes, j = hashes + 1, j + 1
            end = text.find('"' + "#" * hashes, j + 1)
            end = n if end < 0 else end
            tokens.append(("str", text[j + 1 : end], line))
            line += text.count("\n", i, end)
            i = end + 1 + hashes
        elif c == '"' or (c in "bc" and text.startswith('"', i + 1)):
            j = i + 1 if c == '"' else i + 2
            start = j
            while j < n and text[j] != '"':
                j += 2 if text[j] == "\\" else 1
            tokens.append(("str", text[start:j], line))
            line += text.count("\n", i, j)
            i = j + 1
        elif c == "'" or (c == "b" and text.startswith("'", i + 1)):
            j = i + 1 if c == "'" else i + 2
            if text.startswith("\\", j):  # '\n', '\u{..}', '\''
                k = text.find("'", j + 2)
                i = k + 1
            elif j + 1 < n and text[j + 1] == "'":  # 'a'
                i = j + 2
            else:  # a lifetime or label
                i = j
        elif c.isalpha() or c == "_" or ord(c) > 127:
            j = i
            while j < n and (text[j].isalnum() or text[j] == "_" or ord(text[j]) > 127):
                j += 1
            word = text[i:j]
            if word == "r" and text.startswith("#", j):  # raw identifier r#type
                k = j + 1
                while k < n and (text[k].isalnum() or text[k] == "_"):
                    k += 1
                word, j = text[j + 1 : k], k
            tokens.append(("id", word, line))
            i = j
        elif text.startswith("::", i):
            tokens.append(("p", "::", line))
            i += 2
        else:
            tokens.append(("p", c, line))
            i += 1
    return tokens


def _raw_string_start(text, i):
    j = i + 1
    if text[i] in "bc" and text.startswith("r", j):
        j += 1
    elif text[i] != "r":
        return False
    while j < len(text) and text[j] == "#":
        j += 1
    return j < len(text) and text[j] == '"' and j > i + (text[i] != "r")


# ---------------------------------------------------------------------------------------------
# One target's module tree: which file each module lives in, found by following `mod x;`.


class SourceFile:
    def __init__(self, path, modpath):
        self.path = path  # relative to the repository root
        self.modpath = modpath  # tuple of module names from the crate root
        with open(os.path.join(ROOT, path), encoding="utf-8") as f:
            self.tokens = lex(f.read())
        self.owns_dir = os.path.basename(path) in ("mod.rs", "lib.rs", "main.rs") or not modpath
        self.items = set()  # names defined at the top of the file
        self.reexports = {}  # name -> use path (segments), from `pub use`
        self.glob_reexports = []  # use paths of `pub use x::*`
        self.uses = []  # (segments, line, modpath of the enclosing inline module, bound name)
        self.paths = []  # (segments, line, modpath of the enclosing inline module)


def child_dir(source):
    base = os.path.dirname(source.path)
    if source.owns_dir:
        return base
    return os.path.join(base, os.path.basename(source.path)[: -len(".rs")])


class Target:
    def __init__(self, package, name, root_path):
        self.package, self.name = package, name
        self.modules = {}  # modpath -> SourceFile (inline modules map to their file)
        self.files = {}  # path -> SourceFile
        self._load(root_path, ())

    def _load(self, path, modpath):
        source = SourceFile(path, modpath)
        self.files[path] = source
        self.modules[modpath] = source
        scan(source, self)

    def declare_module(self, source, inline_path, name, attr_path):
        """`mod name;` inside `source` at inline module `inline_path`: load its file."""
        modpath = source.modpath + inline_path + (name,)
        base = os.path.join(child_dir(source), *inline_path)
        if attr_path:
            candidates = [os.path.normpath(os.path.join(os.path.dirname(source.path), attr_path))]
        else:
            candidates = [os.path.join(base, name + ".rs"), os.path.join(base, name, "mod.rs")]
        for candidate in candidates:
            if os.path.isfile(os.path.join(ROOT, candidate)) and candidate not in self.files:
                self._load(candidate, modpath)
                return

    def children(self, modpath):
        return {m[-1] for m in self.modules if len(m) == len(modpath) + 1 and m[:-1] == modpath}


def scan(source, target):
    """Reads one file: its module declarations, items, `use` trees, re-exports and paths."""
    toks = source.tokens
    inline = []  # (name, brace depth at which it closes)
    depth, i, pending_attr_path = 0, 0, None
    while i < len(toks):
        kind, value, line = toks[i]
        here = tuple(name for name, _ in inline)
        if value == "{" and kind == "p":
            depth += 1
        elif value == "}" and kind == "p":
            depth -= 1
            if inline and inline[-1][1] == depth:
                inline.pop()
        elif value == "#" and _is_path_attr(toks, i):
            pending_attr_path = toks[i + 5][1]
        elif kind == "id" and value == "mod" and i + 2 < len(toks) and toks[i + 1][0] == "id":
            name, after = toks[i + 1][1], toks[i + 2][1]
            if after == ";":
                target.declare_module(source, here, name, pending_attr_path)
            elif after == "{":
                target.modules[source.modpath + here + (name,)] = source
                inline.append((name, depth))
                depth += 1
                i += 3
                pending_attr_path = None
                continue
            if not here and depth == 0:
                source.items.add(name)
            pending_attr_path = None
        elif kind == "id" and value == "use" and _starts_statement(toks, i):
            public = _is_public(toks, i)
            j, trees = parse_use(toks, i + 1)
            for segments, bound, glob in trees:
                source.uses.append((segments, line, source.modpath + here, bound))
                if public and not here:
                    if glob:
                        source.glob_reexports.append(segments)
                    elif bound:
                        source.reexports[bound] = segments
            i = j
            continue
        elif kind == "id" and value in ITEM_KEYWORDS and depth == len(inline) and i + 1 < len(toks):
            if toks[i + 1][0] == "id" and not here:
                source.items.add(toks[i + 1][1])
        elif kind == "id" and _path_start(toks, i):
            segments, j = [value], i + 1
            while j + 1 < len(toks) and toks[j][1] == "::" and toks[j + 1][0] == "id":
                segments.append(toks[j + 1][1])
                j += 2
            if len(segments) > 1:
                source.paths.append((segments, line, source.modpath + here))
            i = j
            continue
        i += 1


ITEM_KEYWORDS = {"fn", "struct", "enum", "trait", "type", "const", "static", "union", "macro_rules"}
KEYWORDS = {"as", "in", "pub", "use", "mod", "let", "fn", "impl", "for", "where", "dyn", "Self"}


def _is_path_attr(toks, i):
    window = [t[1] for t in toks[i : i + 7]]
    return len(window) == 7 and window[:5] == ["#", "[", "path", "=", window[4]] and toks[i + 4][0] == "str" and window[5] == "]"


def _starts_statement(toks, i):
    """`use` as a statement (not a field or method named `use`, which Rust forbids anyway)."""
    return i + 1 < len(toks) and (toks[i + 1][0] == "id" or toks[i + 1][1] in ("{", "::"))


def _is_public(toks, i):
    j = i - 1
    if j >= 0 and toks[j][1] == ")":  # pub(crate), pub(super), pub(in path)
        while j >= 0 and toks[j][1] != "(":
            j -= 1
        j -= 1
    return j >= 0 and toks[j][1] == "pub"


def _path_start(toks, i):
    """An identifier that starts a path (`a::b`), not one in the middle of one."""
    if i + 1 >= len(toks) or toks[i + 1][1] != "::":
        return False
    prev = toks[i - 1][1] if i else ""
    if prev == "::" or prev == "in":  # `x::a::b` is read from `x`; `pub(in crate::a)` is no use
        return False
    return toks[i][1] not in KEYWORDS


def parse_use(toks, i):
    """Parses a use tree starting at toks[i]. Returns (index after `;`, [(segments, bound, glob)])."""
    out = []

    def tree(i, prefix):
        segments = list(prefix)
        if toks[i][1] == "::":
            i += 1
        while True:
            kind, value, _ = toks[i]
            if value == "{":
                i += 1
                while toks[i][1] != "}":
                    i = tree(i, segments)
                    if toks[i][1] == ",":
                        i += 1
                return i + 1
            if value == "*":
                out.append((segments, None, True))
                return i + 1
            if kind != "id":
                return i
            if value == "self" and prefix and len(segments) == len(prefix):
                # `a::{self, b}`: `self` names `a` itself
                bound = segments[-1]
                i += 1
                if toks[i][1] == "as":
                    bound, i = toks[i + 1][1], i + 2
                out.append((segments, bound, False))
                return i
            segments = segments + [value]
            i += 1
            if toks[i][1] == "::":
                i += 1
                continue
            bound = segments[-1]
            if toks[i][1] == "as":
                bound, i = toks[i + 1][1], i + 2
            out.append((segments, None if bound == "_" else bound, False))
            return i

    i = tree(i, [])
    while i < len(toks) and toks[i][1] != ";":
        i += 1
    return i + 1, out


# ---------------------------------------------------------------------------------------------
# Resolving a path to the file that defines what it names.


class Resolver:
    def __init__(self, target):
        self.target = target
        self.aliases = {}  # path -> {name: modpath} bound by `use` to a module
        for source in target.files.values():
            names = {}
            for segments, _, scope, bound in source.uses:
                if bound:
                    found = self.module_of(segments, scope, {})
                    if found and found[1] == len(segments):
                        names[bound] = found[0]
            self.aliases[source.path] = names

    def module_of(self, segments, scope, aliases):
        """(deepest module the path walks through, number of segments used), or None if the path
        does not start in this crate."""
        modules = self.target.modules
        first = segments[0]
        if first == "crate":
            base, used = (), 1
        elif first in ("self", "super"):
            base, used = scope, 0
            if first == "self":
                used = 1
            while used < len(segments) and segments[used] == "super":
                base, used = base[:-1], used + 1
        elif first in aliases:
            base, used = aliases[first], 1
        elif scope + (first,) in modules:
            base, used = scope + (first,), 1
        else:
            return None
        while used < len(segments) and base + (segments[used],) in modules:
            base, used = base + (segments[used],), used + 1
        return base, used

    def resolve(self, segments, scope, aliases, seen=None):
        """The files (SourceFile) a path leans on: the module it names, then each file a
        `pub use` there passes it on to, down to the one that defines it. [] outside the crate."""
        found = self.module_of(segments, scope, aliases)
        if not found:
            return []
        modpath, used = found
        source = self.target.modules[modpath]
        if used == len(segments):
            return [source]
        name = segments[used]
        seen = seen or set()
        if (modpath, name) in seen or name in source.items:
            return [source]
        seen.add((modpath, name))
        own_aliases = self.aliases.get(source.path, {})
        if name in source.reexports:
            via = self.resolve(source.reexports[name] + segments[used + 1 :], modpath, own_aliases, seen)
            return [source] + via
        for glob in source.glob_reexports:
            via = self.resolve(glob + segments[used:], modpath, own_aliases, seen)
            if via and name in via[-1].items:
                return [source] + via
        return [source]


def references(target):
    """Every reference from a file to a file of the target: (from, to, line, text). A path
    through a `pub use` refers to the re-exporting file and to the defining one."""
    resolver = Resolver(target)
    refs = []
    for source in target.files.values():
        aliases = resolver.aliases[source.path]
        for segments, line, scope, _ in source.uses:
            for to in resolver.resolve(segments, scope, aliases):
                refs.append((source, to, line, "use " + "::".join(segments)))
        for segments, line, scope in source.paths:
            for to in resolver.resolve(segments, scope, aliases):
                refs.append((source, to, line, "::".join(segments)))
    return refs


def is_below(parent, other):
    """`other` is a submodule of `parent` (declared by it, or further down)."""
    return len(other.modpath) > len(parent.modpath) and other.modpath[: len(parent.modpath)] == parent.modpath


# ---------------------------------------------------------------------------------------------
# Cycles (Tarjan's strongly connected components; iterative).


def cycles(nodes, edges):
    index, low, on_stack, stack, result, counter = {}, {}, set(), [], [], [0]
    for start in nodes:
        if start in index:
            continue
        work = [(start, iter(sorted(edges.get(start, ()))))]
        index[start] = low[start] = counter[0]
        counter[0] += 1
        stack.append(start)
        on_stack.add(start)
        while work:
            node, children = work[-1]
            advanced = False
            for child in children:
                if child not in index:
                    index[child] = low[child] = counter[0]
                    counter[0] += 1
                    stack.append(child)
                    on_stack.add(child)
                    work.append((child, iter(sorted(edges.get(child, ())))))
                    advanced = True
                    break
                if child in on_stack:
                    low[node] = min(low[node], index[child])
            if advanced:
                continue
            work.pop()
            if work:
                low[work[-1][0]] = min(low[work[-1][0]], low[node])
            if low[node] == index[node]:
                component = []
                while True:
                    member = stack.pop()
                    on_stack.discard(member)
                    component.append(member)
                    if member == node:
                        break
                if len(component) > 1:
                    result.append(sorted(component))
    return result


def one_cycle(component, edges):
    """A shortest cycle through the component's first node, as a list of nodes."""
    members = set(component)
    start = component[0]
    paths, frontier = {start: [start]}, [start]
    while frontier:
        nxt = []
        for node in frontier:
            for child in sorted(edges.get(node, ())):
                if child == start:
                    return paths[node] + [start]
                if child in members and child not in paths:
                    paths[child] = paths[node] + [child]
                    nxt.append(child)
        frontier = nxt
    return component


# ---------------------------------------------------------------------------------------------


def main():
    os.chdir(ROOT)
    problems, known_hits = [], set()

    def report(key, message):
        if key in KNOWN:
            known_hits.add(key)
        else:
            problems.append(message)

    metadata = json.loads(
        subprocess.run(
            ["cargo", "metadata", "--no-deps", "--offline", "--format-version", "1"],
            check=True,
            capture_output=True,
            text=True,
        ).stdout
    )
    packages = metadata["packages"]

    # 1. crates
    names = {p["name"] for p in packages}
    crate_edges = defaultdict(set)
    kinds = {}
    for package in packages:
        for dep in package["dependencies"]:
            if dep["name"] in names and dep["name"] != package["name"]:
                crate_edges[package["name"]].add(dep["name"])
                kinds.setdefault((package["name"], dep["name"]), set()).add(dep["kind"] or "normal")
    for component in cycles(sorted(names), crate_edges):
        loop = one_cycle(component, crate_edges)
        detail = ", ".join(f"{a} -> {b}: {'+'.join(sorted(kinds[(a, b)]))}" for a, b in zip(loop, loop[1:]))
        report(("crates", *component), f"crate loop: {' -> '.join(loop)} ({detail})")

    # 2. files, per target
    reported_loops = set()
    files_seen = set()
    layer_refs = []
    for package in packages:
        for target_meta in package["targets"]:
            root_path = os.path.relpath(target_meta["src_path"], ROOT)
            if not os.path.isfile(root_path):
                continue
            target = Target(package["name"], target_meta["name"], root_path)
            files_seen.update(target.files)
            refs = references(target)
            edges, why = defaultdict(set), {}
            for src, dst, line, text in refs:
                if src is dst or is_below(src, dst):
                    continue
                edges[src.path].add(dst.path)
                why.setdefault((src.path, dst.path), f"{src.path}:{line}: {text}")
            for component in cycles(sorted(target.files), edges):
                if tuple(component) in reported_loops:
                    continue
                reported_loops.add(tuple(component))
                loop = one_cycle(component, edges)
                steps = "; ".join(why[(a, b)] for a, b in zip(loop, loop[1:]))
                more = "" if len(component) == len(loop) - 1 else f" (one of the loops among {', '.join(component)})"
                report(("loop", *component), f"file loop: {' -> '.join(loop)}{more}: {steps}")
            if package["name"] == LAYERED_PACKAGE and "lib" in target_meta["kind"]:
                layer_refs = refs
                for path, source in target.files.items():
                    top = source.modpath[0] if source.modpath else "lib"
                    if top != "lib" and top not in ALLOWED:
                        problems.append(f"{path}: module `{top}` is not in the layer table of .ci/layers.py")

    # 3. layers of kenar-chat
    below = set()
    for module, allowed in LAYERS:
        for used in sorted(allowed - below):
            problems.append(f".ci/layers.py: `{module}` may use `{used}`, which is not listed below it")
        below.add(module)
    seen = set()
    for src, dst, line, text in layer_refs:
        user = src.modpath[0] if src.modpath else "lib"
        used = dst.modpath[0] if dst.modpath else "lib"
        if user == used or "lib" in (user, used) or user not in ALLOWED:
            continue
        if used in ALLOWED[user] and (user, used) not in FORBIDDEN:
            continue
        key = ("layer", src.path, used)
        reason = FORBIDDEN.get((user, used), f"`{user}` may not use `{used}`")
        message = f"{src.path}:{line}: {reason} ({text})"
        if key in KNOWN:
            known_hits.add(key)
        elif (key, line) not in seen:
            seen.add((key, line))
            problems.append(message)

    for problem in problems:
        print(f"layers: {problem}", file=sys.stderr)
    if known_hits:
        print(f"layers: warning: {len(known_hits)} known violation(s) allowed by KNOWN in .ci/layers.py (issue 20 removes them):", file=sys.stderr)
        for kind, *what in sorted(known_hits):
            print(f"layers: warning:   {kind}: {' <-> '.join(what) if kind == 'loop' else ' -> '.join(what)}", file=sys.stderr)
    for stale in sorted(KNOWN - known_hits):
        print(f"layers: warning: KNOWN entry no longer found, remove it: {stale}", file=sys.stderr)
    if problems:
        sys.exit(1)
    print(
        f"layers: ok ({len(names)} crates, {len(files_seen)} files, {len(ALLOWED)} layers of "
        f"{LAYERED_PACKAGE}: no loop and no upward use outside KNOWN)"
    )


if __name__ == "__main__":
    main()
