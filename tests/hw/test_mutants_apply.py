"""bench/mutate.py's planted bugs still apply: each mutant's text occurs exactly once in its
file (a refactor that moves or rewrites the line would otherwise leave a mutant that cannot be
planted, a silent hole in `make mutate`), and each names tests that exist."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


def _mutants():
    spec = importlib.util.spec_from_file_location("bench_mutate", ROOT / "bench" / "mutate.py")
    mod = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = mod
    spec.loader.exec_module(mod)
    return mod.MUTANTS


MUTANTS = _mutants()


def test_mutant_ids_are_unique():
    ids = [mu.id for mu in MUTANTS]
    assert len(ids) == len(set(ids)), sorted(i for i in ids if ids.count(i) > 1)


@pytest.mark.parametrize("mu", MUTANTS, ids=[mu.id for mu in MUTANTS])
def test_mutant_applies(mu):
    text = (ROOT / mu.file).read_text()
    assert text.count(mu.find) == 1, (
        f"{mu.id}: the text to mutate occurs {text.count(mu.find)} times in {mu.file}")
    assert mu.replace != mu.find
    for t in mu.tests:
        path, _, name = t.partition("::")
        assert (ROOT / path).exists(), f"{mu.id}: no test file {path}"
        if name:
            func = name.split("[")[0]
            assert f"def {func}(" in (ROOT / path).read_text(), f"{mu.id}: no test {t}"
