"""Running a SymbiYosys proof of an Amaranth design (shared by the formal tests)."""

from __future__ import annotations

import inspect
import subprocess
import time
import types
from pathlib import Path

from amaranth.back import rtlil

OUT = Path(__file__).resolve().parent.parent.parent / "build" / "formal"

SBY = """\
[options]
mode {mode}
depth {depth}

[engines]
smtbmc boolector

[script]
read_rtlil design.il
prep -top top

[files]
design.il
"""


def run_sby(formal_env, top, name: str, *, depth: int, mode: str = "prove"
            ) -> tuple[bool, str]:
    """Prove (``mode`` prove: k-induction; bmc: bounded) the assertions of the Amaranth design
    ``top`` with SymbiYosys in ``build/formal/<name>/``; returns ``(passed, sby output)``."""
    sby, env = formal_env
    work = OUT / name
    work.mkdir(parents=True, exist_ok=True)
    (work / "design.il").write_text(rtlil.convert(top, name="top"))
    (work / "proof.sby").write_text(SBY.format(depth=depth, mode=mode))
    t0 = time.monotonic()
    res = subprocess.run([sby, "-f", "proof.sby"], cwd=work, env=env, capture_output=True,
                         text=True, timeout=3600)
    out = res.stdout + res.stderr
    print(f"[formal] {name} ({mode}, depth {depth}): rc={res.returncode} in "
          f"{time.monotonic() - t0:.1f} s")
    return res.returncode == 0 and "DONE (PASS" in out, out


def mutated(module, find: str, replace: str):
    """A private copy of ``module`` with its one occurrence of ``find`` replaced by ``replace``
    (a planted bug, as ``bench/mutate.py`` writes them; the installed module is untouched)."""
    src = inspect.getsource(module)
    assert src.count(find) == 1, (f"mutant text must occur once in {module.__name__}, "
                                  f"found {src.count(find)} times: {find!r}")
    copy = types.ModuleType(f"{module.__name__}_mutant")
    copy.__package__ = module.__package__
    exec(compile(src.replace(find, replace), module.__file__, "exec"), copy.__dict__)
    return copy
