"""The package diagram of docs/architecture.md, enforced on the source tree.

Every ``import`` of an ``ivl3_plugin`` module (at module level or inside a function; typing-only
imports under ``if TYPE_CHECKING:`` excepted) is an edge between two components (the first name
under ``ivl3_plugin``).  Each edge must be allowed by :data:`ALLOWED`, which is the table the docs
draw; only ``hosts/`` may import a host framework; no module grows past the size the brief names.
"""
from __future__ import annotations

import ast
import re
from pathlib import Path
from typing import Dict, Iterator, Set, Tuple

import pytest

REPO = Path(__file__).resolve().parent.parent
PACKAGE = REPO / "ivl3_plugin"
ANY = "*"

STAGES = {"convert", "tile", "template", "metric", "recipe"}
ALLOWED: Dict[str, Set[str]] = {
    # layer 0: no ivl3_plugin imports
    "settings": set(), "resources": set(), "datasets": set(), "api": set(),
    # layer 1: the shared lower layer
    "shared": {"settings", "resources"},
    # layer 2: the plugin machinery
    "plugins": {"settings"},
    # layer 3: pipeline stages: they never import each other, except where the docs say why
    "tile": {"settings", "shared"},
    "convert": {"settings", "shared", "plugins"},
    "template": {"settings", "shared", "plugins"},
    "metric": {"settings", "shared", "plugins"},
    "preference": {"settings", "shared", "plugins", "metric"},  # scores candidates with the metric registry
    "recipe": {"settings", "shared", "template", "tiny"},  # template.spec: run settings; tiny: `ivl3-tiny`
    "demo_data": {"shared"},
    "tiny": {"settings", "shared", "demo_data", "checkpoint"},  # the remote-format fixture writes that format
    "checkpoint": {"shared"},
    # layer 4: what plugs the stages into the world
    "default_plugins": {"__init__", "settings", "shared", "resources", "plugins", "datasets", *STAGES},
    "hosts": {"settings", "shared", "resources", "plugins", "datasets", "tiny", "checkpoint", *STAGES},
    # layer 5: applications
    "cli": {ANY}, "demo": {ANY}, "demo_mpo": {ANY}, "__main__": {"cli"}, "__init__": {"plugins"},
}
HOST_PACKAGES = ("swift", "llamafactory")
APPLICATIONS = ("cli", "demo", "demo_mpo")  # layer 5: they may import each other (demo runs demo_mpo's round)


def _modules() -> Iterator[Tuple[str, Path]]:
    for path in sorted(PACKAGE.rglob("*.py")):
        parts = path.relative_to(REPO).with_suffix("").parts
        yield ".".join(parts[:-1] if parts[-1] == "__init__" else parts), path


def _is_module(dotted: str) -> bool:
    base = REPO.joinpath(*dotted.split("."))
    return base.with_suffix(".py").is_file() or (base / "__init__.py").is_file()


def _typing_only(tree: ast.AST) -> Set[int]:
    """ids of import nodes inside ``if TYPE_CHECKING:`` blocks."""
    out = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
            out |= {id(n) for stmt in node.body for n in ast.walk(stmt)}
    return out


def imports(path: Path, module: str) -> Iterator[Tuple[str, int]]:
    """(imported dotted name, line) for every import in ``path`` (``module`` is its dotted name)."""
    tree = ast.parse(path.read_text())
    skip = _typing_only(tree)
    package = module if path.name == "__init__.py" else module.rsplit(".", 1)[0]
    for node in ast.walk(tree):
        if id(node) in skip:
            continue
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield alias.name, node.lineno
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")[: len(package.split(".")) - (node.level - 1)]
                source = ".".join(base + ([node.module] if node.module else []))
            else:
                source = node.module or ""
            for alias in node.names:
                sub = f"{source}.{alias.name}"
                yield (sub if _is_module(sub) else source), node.lineno


def component(dotted: str) -> str:
    parts = dotted.split(".")
    return parts[1] if len(parts) > 1 else "__init__"


def edges():
    for module, path in _modules():
        for target, line in imports(path, module):
            if target.startswith("ivl3_plugin"):
                a, b = component(module), component(target)
                if a != b:
                    yield a, b, f"{path.relative_to(REPO)}:{line}"


def test_every_component_is_in_the_table():
    found = {component(m) for m, _ in _modules()}
    assert found <= set(ALLOWED), f"add {sorted(found - set(ALLOWED))} to ALLOWED and docs/architecture.md"


def test_imports_follow_the_package_diagram():
    bad = [f"{where}: {a} imports {b}" for a, b, where in edges()
           if ANY not in ALLOWED[a] and b not in ALLOWED[a]]
    assert not bad, "imports the diagram does not allow:\n" + "\n".join(bad)


def test_stages_form_no_cycle():
    graph: Dict[str, Set[str]] = {}
    for a, b, _ in edges():
        graph.setdefault(a, set()).add(b)

    def reaches(start, goal, seen=()):
        return any(n == goal or (n not in seen and reaches(n, goal, seen + (n,))) for n in graph.get(start, ()))

    cycles = sorted(c for c in graph if c not in APPLICATIONS and reaches(c, c))
    assert not cycles, f"components in an import cycle: {cycles}"


def test_only_host_adapters_import_a_host():
    bad = []
    for module, path in _modules():
        if component(module) == "hosts":
            continue
        for target, line in imports(path, module):
            if target.split(".")[0] in HOST_PACKAGES:
                bad.append(f"{path.relative_to(REPO)}:{line} imports {target}")
    assert not bad, bad


def test_the_diagram_in_the_docs_is_this_table():
    doc = (REPO / "docs" / "architecture.md").read_text()
    for name, allowed in ALLOWED.items():
        shown = "anything" if ANY in allowed else (", ".join(sorted(allowed)) or "nothing")
        assert re.search(rf"^\| `{re.escape(name)}` \| {re.escape(shown)} \|", doc, re.M), \
            f"docs/architecture.md: no row '| `{name}` | {shown} |'"


@pytest.mark.parametrize("module,path", [(m, p) for m, p in _modules()], ids=lambda v: str(v))
def test_modules_stay_small(module, path):
    assert len(path.read_text().splitlines()) < 400, f"{path}: split it (one concern per module)"
