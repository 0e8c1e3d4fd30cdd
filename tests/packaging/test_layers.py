"""The package's layers depend one way and no module imports itself back.

Every ``import`` (module level or inside a function) of every module under ``sparsemac.`` is read
with :mod:`ast`.  Layers, lowest first: golden -> host -> hw -> sim -> flow -> cli; a module may
import its own layer and the ones below, never one above, and never tests/ or bench/.  Files
(and the folders inside a layer) must form no import cycle.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

import sparsemac

ROOT = Path(__file__).resolve().parents[2]
LAYERS = ["golden", "host", "hw", "sim", "flow", "cli"]
# folders that are not layers: the package root's own modules and the shipped presets
NEUTRAL = {"paths", "yamlfile", "configs", "__init__", "__main__"}


def _package_dirs() -> dict[str, Path]:
    """``sparsemac.X`` -> folder, from the installed package's own mapping."""
    import importlib

    out = {"sparsemac": Path(sparsemac.__file__).parent}
    for layer in LAYERS + ["configs"]:
        mod = importlib.import_module(f"sparsemac.{layer}")
        out[f"sparsemac.{layer}"] = Path(mod.__file__).parent
    return out


def _modules() -> dict[str, Path]:
    mods = {}
    for pkg, folder in _package_dirs().items():
        if pkg == "sparsemac":
            for f in folder.glob("*.py"):
                mods[f"sparsemac.{f.stem}" if f.stem != "__init__" else "sparsemac"] = f
            continue
        for f in folder.rglob("*.py"):
            rel = f.relative_to(folder).with_suffix("")
            parts = [p for p in rel.parts if p != "__init__"]
            mods[".".join([pkg, *parts])] = f
    return mods


def _imports(name: str, path: Path, *, modules_only: bool = False) -> set[str]:
    """Every name ``name`` imports (``from a import b`` gives ``a`` and ``a.b``; with
    ``modules_only`` just ``a``), relative imports resolved."""
    tree = ast.parse(path.read_text(), str(path))
    is_pkg = path.name == "__init__.py"
    base = name.split(".") if is_pkg else name.split(".")[:-1]
    found = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found.update(a.name for a in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                stem = base[:len(base) - node.level + 1]
                mod = ".".join(stem + ([node.module] if node.module else []))
            else:
                mod = node.module or ""
            found.add(mod)
            if not modules_only:  # `from pkg import submodule`
                found.update(f"{mod}.{a.name}" for a in node.names)
    return found


def _graph():
    mods = _modules()
    graph = {}
    for name, path in mods.items():
        deps = set()
        for imp in _imports(name, path):
            while imp and imp not in mods:
                imp = imp.rpartition(".")[0]
            if imp and imp != name:
                deps.add(imp)
        graph[name] = deps
    return graph


def _layer(mod: str) -> str:
    parts = mod.split(".")
    return parts[1] if len(parts) > 1 else "__init__"


GRAPH = _graph()


def test_every_layer_is_found():
    assert {_layer(m) for m in GRAPH} >= set(LAYERS), sorted(GRAPH)
    assert len(GRAPH) > 60, len(GRAPH)


@pytest.mark.parametrize("layer", LAYERS)
def test_no_upward_import(layer):
    rank = LAYERS.index(layer)
    bad = []
    for mod, deps in GRAPH.items():
        if _layer(mod) != layer:
            continue
        for d in deps:
            dl = _layer(d)
            if dl in NEUTRAL or dl == "__init__":
                continue
            if LAYERS.index(dl) > rank:
                bad.append(f"{mod} imports {d} ({dl} is above {layer})")
    assert not bad, "\n".join(bad)


def test_every_internal_import_names_an_existing_module():
    mods = _modules()
    bad = [f"{name} imports {imp}, which does not exist"
           for name, path in mods.items()
           for imp in _imports(name, path, modules_only=True)
           if imp.split(".")[0] == "sparsemac" and imp not in mods]
    assert not bad, "\n".join(bad)


def test_product_never_imports_tests_or_bench():
    bad = []
    for name, path in _modules().items():
        for imp in _imports(name, path):
            if imp.split(".")[0] in ("tests", "bench"):
                bad.append(f"{name} imports {imp}")
        text = path.read_text()
        if 'test_module="tests.' in text:
            bad.append(f"{name} runs a cocotb module from tests/")
    assert not bad, "\n".join(bad)


def _cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components with more than one node (Tarjan)."""
    index, low, stack, on, out = {}, {}, [], set(), []
    counter = [0]

    def visit(v):
        index[v] = low[v] = counter[0]
        counter[0] += 1
        stack.append(v)
        on.add(v)
        for w in graph.get(v, ()):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on.discard(w)
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1:
                out.append(sorted(comp))

    for v in graph:
        if v not in index:
            visit(v)
    return out


def test_no_import_cycle_between_files():
    # a package's __init__ re-exporting its own modules is not a cycle between files
    graph = {m: {d for d in deps if not (m.startswith(d + ".") and d == m.rpartition(".")[0])
                 and not (d.startswith(m + ".") and GRAPH.get(m) is not None
                          and _modules()[m].name == "__init__.py")}
             for m, deps in GRAPH.items()}
    cycles = _cycles(graph)
    assert not cycles, "\n".join(" <-> ".join(c) for c in cycles)


def test_no_import_cycle_between_folders():
    def folder(m):
        path = _modules()[m]
        parts = m.split(".")
        return ".".join(parts if path.name == "__init__.py" else parts[:-1])

    graph: dict[str, set[str]] = {}
    for m, deps in GRAPH.items():
        fm = folder(m)
        for d in deps:
            fd = folder(d)
            # a parent folder's __init__ re-exports its children: not a cycle
            if fd != fm and not fm.startswith(fd + ".") and not fd.startswith(fm + "."):
                graph.setdefault(fm, set()).add(fd)
    cycles = _cycles(graph)
    assert not cycles, "\n".join(" <-> ".join(c) for c in cycles)
