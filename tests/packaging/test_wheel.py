"""The wheel works on its own: built, installed into a fresh venv, run outside the checkout.

``pip wheel .`` builds the wheel; a new venv installs it with its dependencies from the package
index; then, from an empty folder, the documented commands run (``bench ring``, ``lut --report
--no-sim``, ``run ... --engine model``, ``generate``), ``import sparsemac.hw`` resolves to the
venv and the bare ``import hw`` fails, and nothing was written into site-packages.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


def _run(cmd, cwd, env, timeout=900):
    t0 = time.time()
    r = subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout)
    print(f"[wheel] {' '.join(map(str, cmd))}: exit {r.returncode} in {time.time() - t0:.1f} s")
    return r


def _files(folder: Path) -> set[str]:
    return {str(p.relative_to(folder)) for p in folder.rglob("*")
            if "__pycache__" not in p.parts}


@pytest.fixture(scope="module")
def venv(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("wheel")
    env = {k: v for k, v in os.environ.items()
           if k not in ("PYTHONPATH", "VIRTUAL_ENV", "SPARSEMAC_BUILD")}
    r = _run([sys.executable, "-m", "pip", "wheel", "--no-deps", "-q", "-w", str(tmp / "dist"),
              str(ROOT)], ROOT, env)
    assert r.returncode == 0, r.stderr
    (wheel,) = (tmp / "dist").glob("sparsemac-*.whl")
    r = _run([sys.executable, "-m", "venv", str(tmp / "venv")], tmp, env)
    assert r.returncode == 0, r.stderr
    vpy = tmp / "venv" / "bin" / "python"
    r = _run([str(vpy), "-m", "pip", "install", "-q", str(wheel)], tmp, env)
    assert r.returncode == 0, r.stderr
    outside = tmp / "outside"
    outside.mkdir()
    env.update(PATH=f"{tmp / 'venv' / 'bin'}{os.pathsep}{env.get('PATH', '')}",
               SPARSEMAC_CACHE=str(tmp / "cache"), VIRTUAL_ENV=str(tmp / "venv"))
    site = Path(subprocess.run([str(vpy), "-c", "import sparsemac, os; "
                                "print(os.path.dirname(sparsemac.__file__))"],
                               cwd=outside, env=env, capture_output=True, text=True,
                               check=True).stdout.strip())
    return {"py": vpy, "cwd": outside, "env": env, "site": site, "before": _files(site)}


def test_imports_resolve_to_the_installed_package(venv):
    assert ROOT not in venv["site"].parents, venv["site"]
    r = _run([str(venv["py"]), "-c", "import sparsemac.hw, sparsemac.cli; "
              "print(sparsemac.hw.__file__)"], venv["cwd"], venv["env"])
    assert r.returncode == 0 and str(venv["site"]) in r.stdout, (r.stdout, r.stderr)
    for bare in ("hw", "sim", "golden", "flow", "host", "cli"):
        r = _run([str(venv["py"]), "-c", f"import {bare}"], venv["cwd"], venv["env"])
        assert r.returncode != 0 and "No module named" in r.stderr, (bare, r.stdout, r.stderr)


def test_documented_commands_run_outside_the_checkout(venv):
    cwd, env = venv["cwd"], venv["env"]
    shutil.copy(ROOT / "examples" / "demo_net.yaml", cwd / "demo_net.yaml")
    r = _run(["sparsemac", "run", "demo_net.yaml", "--engine", "model", "--json"], cwd, env)
    assert r.returncode == 0, r.stderr
    assert '"mismatches": 0' in r.stdout and '"status": "OK"' in r.stdout, r.stdout[-500:]
    r = _run(["sparsemac", "lut", "--report", "--no-sim"], cwd, env)
    assert r.returncode == 0, r.stderr
    assert "gelu" in (cwd / "activation_accuracy.md").read_text()
    r = _run(["sparsemac", "bench", "ring", "--nodes", "4", "--cycles", "2000",
              "--injection", "0.3", "--pattern", "multicast", "--seed", "7", "--json"], cwd, env)
    assert r.returncode == 0, r.stderr[-2000:]
    assert '"lost": 0' in r.stdout and '"duplicates": 0' in r.stdout, r.stdout[-800:]
    r = _run(["sparsemac", "generate", "-o", "gen"], cwd, env)
    assert r.returncode == 0, r.stderr[-2000:]
    assert (cwd / "gen" / "sparsemac_accelerator.v").stat().st_size > 100_000
    # build products went to the cache and -o folders, never into the installed package
    assert _files(venv["site"]) == venv["before"], _files(venv["site"]) ^ venv["before"]
    assert (Path(env["SPARSEMAC_CACHE"]) / "sim").is_dir()
