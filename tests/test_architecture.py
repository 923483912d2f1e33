"""The architecture's guard: reads every module's imports (ast, nothing is imported) and fails when a
layer rule breaks.

The layers, bottom up (a module imports only from layers below it, or from its own package):

    kernel     harness.{errors, choices, protocols, config, registry, cache, records, metrics, prices,
               progress, environment}
    data       harness.data.*
    retrieval  harness.retrieval.*
    training   harness.training.*
    ladder     harness.ladder.*      pairs  harness.pairs.*   (side by side: neither imports the other)
    decide     harness.decide.*
    cli        harness.cli, harness.commands.*

Backends (``backends.*``) sit beside the core: the core never imports them (it asks
:mod:`harness.registry` by name and calls them through :mod:`harness.protocols`), and a backend
imports only the kernel and the schemas it is configured by, never orchestration or the CLI, and
never another backend's private names. :mod:`harness.metrics` knows no model. No import cycles.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
KERNEL = {f"harness.{m}" for m in ("errors", "choices", "protocols", "config", "registry", "cache", "records", "metrics", "prices", "progress", "environment", "allocator")}
LAYERS = {"kernel": 0, "harness.data": 1, "harness.retrieval": 2, "harness.training": 3, "harness.ladder": 4, "harness.pairs": 4, "harness.decide": 5, "harness.commands": 6}
BACKEND_MAY_IMPORT = KERNEL | {"harness.training.schema"}  # the schema a trainer is configured by
MODEL_PACKAGES = ("torch", "sentence_transformers", "transformers", "peft", "backends")


def module_name(path: Path) -> str:
    parts = path.relative_to(ROOT).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def module_files(root: Path = ROOT) -> dict[str, Path]:
    return {module_name(p): p for package in ("harness", "backends") for p in sorted((root / package).rglob("*.py"))}


def imports_of(path: Path, known: set[str]) -> list[tuple[str, str, int]]:
    """``(module, name or "", line)`` for every import in the file, module-level or not: a lazy import is
    a dependency too. ``from pkg import mod`` resolves to the module when ``pkg.mod`` is one."""
    out = []
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            out += [(alias.name, "", node.lineno) for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            for alias in node.names:
                full = f"{node.module}.{alias.name}"
                out.append((full, "", node.lineno) if full in known else (node.module, alias.name, node.lineno))
    return out


def layer(module: str) -> str | None:
    """The layer a core module belongs to (None for backends and anything outside the project)."""
    if module in KERNEL or module == "harness":
        return "kernel"
    if module == "harness.cli":
        return "harness.commands"
    for package in LAYERS:
        if module == package or module.startswith(package + "."):
            return package
    return None


def violations(graph: dict[str, list[tuple[str, str, int]]], files: dict[str, Path]) -> list[str]:
    """Every broken rule, one line each, naming the file and line."""
    found = []
    for module, imports in graph.items():
        where = files[module].relative_to(ROOT) if module in files else module
        for target, name, line in imports:
            rule = _broken_rule(module, target, name)
            if rule:
                found.append(f"{where}:{line}: {module} imports {target}{'.' + name if name else ''}: {rule}")
    return found + [f"import cycle: {' -> '.join(cycle)}" for cycle in cycles(graph)]


def _broken_rule(module: str, target: str, name: str) -> str | None:
    if not target.startswith(("harness", "backends")):
        if module == "harness.metrics" and target.split(".")[0] in MODEL_PACKAGES:
            return "metrics knows no model"
        return None
    if module.startswith("backends"):
        if target.startswith("backends"):
            return "a private name of another backend" if name.startswith("_") else None
        return None if target in BACKEND_MAY_IMPORT or target == "harness" else "a backend imports only the kernel (and harness.training.schema)"
    if target.startswith("backends"):
        return "the core reaches backends only through harness.registry and harness.protocols"
    if module == "harness.metrics" and target not in ("harness.protocols", "harness.errors"):
        return "metrics knows no model: it imports only protocols and errors"
    mine, theirs = layer(module), layer(target)
    if mine == theirs or theirs is None or mine is None:
        return None
    if LAYERS.get(theirs, 0) >= LAYERS.get(mine, 0):
        return f"layer {mine} may not import layer {theirs} (imports go only downwards)"
    return None


def cycles(graph: dict[str, list[tuple[str, str, int]]]) -> list[list[str]]:
    """Import cycles between project modules (each reported once, from its smallest module)."""
    edges = {m: sorted({t for t, _, _ in imports if t in graph and t != m}) for m, imports in graph.items()}
    found: set[tuple[str, ...]] = set()

    def visit(node: str, path: list[str], on_path: set[str]) -> None:
        for nxt in edges[node]:
            if nxt in on_path:
                cycle = path[path.index(nxt):]
                start = cycle.index(min(cycle))
                found.add(tuple(cycle[start:] + cycle[:start]))
            elif nxt not in done:
                visit(nxt, path + [nxt], on_path | {nxt})
        done.add(node)

    done: set[str] = set()
    for module in sorted(edges):
        if module not in done:
            visit(module, [module], {module})
    return [list(c) + [c[0]] for c in sorted(found)]


def project_graph() -> tuple[dict[str, list[tuple[str, str, int]]], dict[str, Path]]:
    files = module_files()
    return {m: imports_of(p, set(files)) for m, p in files.items()}, files


def test_every_module_has_a_layer():
    files = module_files()
    homeless = [m for m in files if m.startswith("harness") and layer(m) is None]
    assert not homeless, f"modules outside every layer (add them to a package, or to KERNEL): {homeless}"


def test_the_tree_keeps_its_layer_rules():
    graph, files = project_graph()
    assert violations(graph, files) == []


@pytest.mark.parametrize(
    ("module", "target", "name", "rule"),
    [
        ("harness.data.goldset", "harness.ladder.rungs", "DenseRung", "downwards"),
        ("harness.ladder.stages", "harness.decide.report", "", "downwards"),
        ("harness.pairs.synthetic", "harness.ladder.rungs", "", "layer"),
        ("harness.training.job", "backends.st_train", "", "through harness.registry"),
        ("backends.adapter", "harness.ladder.stages", "", "only the kernel"),
        ("backends.llm_openai", "backends.cohere", "_failure", "private"),
        ("harness.metrics", "torch", "", "knows no model"),
        ("harness.metrics", "harness.registry", "", "knows no model"),
    ],
)
def test_each_rule_catches_its_break(module, target, name, rule):
    """The guard itself can fail: a planted import of each forbidden kind is reported."""
    graph = {module: [(target, name, 1)]}
    assert any(rule in line for line in violations(graph, {}))


def test_allowed_imports_pass():
    graph = {
        "harness.ladder.stages": [("harness.training.job", "", 1), ("harness.retrieval.topk", "", 2), ("harness.cache", "", 3)],
        "backends.st_train": [("harness.training.schema", "TrainConfig", 1), ("backends.sentence_transformers", "resolve_model", 2)],
        "harness.metrics": [("harness.protocols", "Run", 1), ("ranx", "", 2)],
    }
    assert violations(graph, {}) == []


def test_a_planted_cycle_is_found():
    graph = {"a": [("b", "", 1)], "b": [("c", "", 1)], "c": [("a", "", 1)], "d": [("a", "", 1)]}
    assert cycles(graph) == [["a", "b", "c", "a"]]
