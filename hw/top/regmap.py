"""THE register map of the accelerator's AXI4-Lite control port (docs/registers.md).

One definition, three consumers: ``hw.top.csr_bank.CsrBank`` builds the hardware from
:func:`registers`, :func:`regmap_markdown` writes docs/registers.md and :func:`regmap_c_header`
the C header for drivers (``python -m sparsemac.hw.top.regmap --md`` / ``--c``; ``sparsemac
generate`` calls the functions).  Error codes are :class:`ErrorCode` (defined in
``golden.descriptors``, which cannot
import ``hw``, and re-exported here: one source).

Register kinds
--------------
``const``   read-only build parameter, fixed at elaboration.
``ro``      read-only live value, driven by the top through an ``In`` port of the bank.
``rw``      read/write storage (byte strobes honoured), an ``Out`` port of the bank.
``pulse``   write-only: writing 1 to a bit pulses it for one cycle (reads 0).
``w1c``     interrupt status: bits set by the top's ``<name>_set`` pulses, cleared by writing 1.
``cnt_lo`` / ``cnt_hi``  a 64-bit performance counter (LO at the lower offset).  Reading LO
            snapshots HI, so reading LO then HI is atomic.  Counters clear on
            ``CONTROL.perf_clear``.
"""

from __future__ import annotations

import argparse
import math
from dataclasses import dataclass

from sparsemac.golden.descriptors import DESC_BYTES, ErrorCode

__all__ = ["ErrorCode", "Field", "Register", "registers", "register", "REGMAP_ID",
           "REGMAP_VERSION", "regmap_markdown", "regmap_c_header", "COUNTERS", "main"]

#: ``ID`` register value: ASCII "SPMC" read as a little-endian word.
REGMAP_ID = 0x434D5053
#: (major, minor, patch) of the register map; major changes break drivers.
REGMAP_VERSION = (0, 2, 0)

#: Performance counters: (name, increment-port width or 0 for free-running, description).
#: The increment width of byte counters is filled in from the AXI beat size.
COUNTERS = (
    ("cycles", 0, "clock cycles since reset or CONTROL.perf_clear (free-running)"),
    ("busy_cycles", 1, "cycles with STATUS.busy set"),
    ("mac_active_cycles", 1, "cycles in which at least one MAC did useful work"),
    ("stall_read_cycles", 1, "cycles a tile waited for DMA read data"),
    ("stall_write_cycles", 1, "cycles results waited for the DMA writer"),
    ("stall_ring_cycles", 1, "cycles a ring port was back-pressured"),
    ("stall_desc_cycles", 1, "cycles the sequencer waited for a descriptor fetch"),
    ("bytes_read", -1, "bytes read over AXI"),
    ("bytes_written", -1, "bytes written over AXI (strobed bytes)"),
    ("pool_active_cycles", 1, "cycles in which at least one tile pooled (a max, average or "
     "global average pool descriptor)"),
)


@dataclass(frozen=True)
class Field:
    """A bit field of a register (``value`` only for ``const`` registers)."""

    name: str
    lsb: int
    width: int
    doc: str
    value: int = 0

    @property
    def mask(self) -> int:
        return ((1 << self.width) - 1) << self.lsb


@dataclass(frozen=True)
class Register:
    """One 32-bit register at byte ``offset``."""

    name: str
    offset: int
    kind: str
    doc: str
    fields: tuple[Field, ...]
    counter: str = ""       #: the counter of a cnt_lo / cnt_hi pair
    inc_width: int = 0      #: increment width of a counter (0 = free-running)

    @property
    def port(self) -> str:
        """Name of the CsrBank member carrying this register."""
        return self.name.lower()

    @property
    def value(self) -> int:
        """Value of a ``const`` register."""
        return sum(f.value << f.lsb for f in self.fields)

    @property
    def reset(self) -> int:
        return self.value if self.kind == "const" else 0


def _log2(x: int) -> int:
    return int(math.log2(x))


def _word(name):
    return (Field(name, 0, 32, name),)


def registers(cfg) -> list[Register]:
    """Every register of the map for the build ``cfg`` (an ``AcceleratorConfig``)."""
    from sparsemac.hw.config import FORMATS

    fmt_mask = sum(1 << i for i, f in enumerate(FORMATS) if f in cfg.formats)
    major, minor, patch = REGMAP_VERSION
    R, F = Register, Field

    def C(name, lsb, width, doc):       # noqa: N802 - a field showing config parameter `name`
        return Field(name, lsb, width, doc, getattr(cfg, name))

    def L(name, lsb, width, doc, param):  # noqa: N802 - the same, as log2 of a power of two
        return Field(name, lsb, width, doc, _log2(getattr(cfg, param)))
    regs = [
        R("ID", 0x00, "const", "identifies a sparsemac accelerator ('SPMC')",
          (F("id", 0, 32, "0x434D5053", REGMAP_ID),)),
        R("VERSION", 0x04, "const", "register map version", (
            F("patch", 0, 8, "patch", patch), F("minor", 8, 8, "minor", minor),
            F("major", 16, 16, "major", major))),
        R("CFG_ARRAY", 0x08, "const", "compute array shape", (
            C("rows", 0, 8, "MAC rows per tile"), C("cols", 8, 8, "MAC columns per tile"),
            C("tiles", 16, 8, "tiles on the ring"),
            C("mul_pipeline", 24, 4, "register stages after each multiplier"))),
        R("CFG_FORMATS", 0x0C, "const", "weight formats and their parameters", (
            F("formats", 0, 4, "bit i set: format code i built in (0 dense, 1 bitmap, 2 block, "
              "3 nm)", fmt_mask),
            F("lut", 4, 1, "activation table built in", int(cfg.lut_enabled)),
            C("group_size", 8, 8, "bitmap G"), C("block_size", 16, 8, "block B"),
            C("nm_max_m", 24, 8, "largest M of N:M"))),
        R("CFG_WIDTHS", 0x10, "const", "data and bus widths", (
            C("acc_width", 0, 8, "accumulator bits"),
            C("data_width", 8, 8, "weight/activation bits"),
            C("axi_addr_width", 16, 8, "AXI address bits"),
            F("axi_bytes", 24, 8, "bytes per AXI data beat", cfg.axi_data_width // 8))),
        R("CFG_BUFFERS", 0x14, "const", "buffer depths", (
            L("weight_buf_log2", 0, 8, "log2 weight buffer entries", "weight_buf_depth"),
            L("act_buf_log2", 8, 8, "log2 activation buffer entries", "act_buf_depth"),
            L("out_buf_log2", 16, 8, "log2 output buffer entries", "out_buf_depth"),
            C("desc_queue_depth", 24, 8, "descriptors prefetched"))),
        R("CFG_DMA", 0x18, "const", "DMA and output parameters", (
            L("max_burst_log2", 0, 4, "log2 longest AXI burst in beats", "axi_max_burst"),
            C("max_outstanding", 8, 5, "outstanding AXI bursts"),
            C("axi_id_width", 16, 4, "AXI ID bits"),
            C("out_lanes", 24, 8, "values per cycle through requant/LUT"))),
        R("CFG_RING", 0x1C, "const", "ring and activation parameters", (
            C("ring_payload_width", 0, 10, "ring flit payload bits"),
            C("ring_inject_yield", 10, 6, "forwarded ACTS flits an injection lets go first"),
            C("ring_fifo_depth", 16, 7, "router FIFO entries"),
            L("pwl_segments_log2", 24, 4, "log2 interpolated-activation segments",
              "pwl_segments"))),
        R("CONTROL", 0x20, "pulse", "commands (write 1 to a bit; reads 0)", (
            F("start", 0, 1, "run DESC_COUNT descriptors from DESC_BASE; clears STATUS.done "
              "and STATUS.error"),
            F("soft_reset", 1, 1, "abort the running work (DMA drained), back to idle"),
            F("perf_clear", 2, 1, "clear every performance counter"))),
        R("STATUS", 0x24, "ro", "engine state", (
            F("busy", 0, 1, "descriptors are running"),
            F("done", 1, 1, "the last run finished without error"),
            F("error", 2, 1, "the last run stopped on an error"),
            F("error_code", 8, 8, "ErrorCode of the error (0 = none)"),
            F("desc_index", 16, 16, "descriptor being run"))),
        R("ERROR_ADDR_LO", 0x28, "ro", "faulting byte address, low word", _word("addr")),
        R("ERROR_ADDR_HI", 0x2C, "ro", "faulting byte address, high word", _word("addr")),
        R("ERROR_DESC", 0x30, "ro", "index of the descriptor that failed", _word("index")),
        R("IRQ_ENABLE", 0x34, "rw", "interrupt enables (irq = OR of IRQ_STATUS AND IRQ_ENABLE)", (
            F("done", 0, 1, "run finished"), F("error", 1, 1, "run stopped on an error"),
            F("desc_done", 2, 1, "a descriptor with the IRQ flag finished"))),
        R("IRQ_STATUS", 0x38, "w1c", "interrupt causes (write 1 to clear)", (
            F("done", 0, 1, "run finished"), F("error", 1, 1, "run stopped on an error"),
            F("desc_done", 2, 1, "a descriptor with the IRQ flag finished"))),
        R("DESC_BASE_LO", 0x40, "rw", f"descriptor table address, low word ({DESC_BYTES}-byte "
          "descriptors)", _word("addr")),
        R("DESC_BASE_HI", 0x44, "rw", "descriptor table address, high word", _word("addr")),
        R("DESC_COUNT", 0x48, "rw", "descriptors to run", _word("count")),
        R("MEM_BASE_LO", 0x50, "rw", "memory window base (buffer offsets are relative to it)",
          _word("addr")),
        R("MEM_BASE_HI", 0x54, "rw", "memory window base, high word", _word("addr")),
        R("MEM_LIMIT_LO", 0x58, "rw", "memory window limit (exclusive)", _word("addr")),
        R("MEM_LIMIT_HI", 0x5C, "rw", "memory window limit, high word", _word("addr")),
    ]
    inc_bytes = (cfg.axi_data_width // 8).bit_length()
    for i, (name, inc, doc) in enumerate(COUNTERS):
        inc = inc_bytes if inc < 0 else inc
        off = 0x80 + 8 * i
        regs.append(R(f"{name.upper()}_LO", off, "cnt_lo", f"{doc}, low word", _word("count"),
                      counter=name, inc_width=inc))
        regs.append(R(f"{name.upper()}_HI", off + 4, "cnt_hi", f"{doc}, high word",
                      _word("count"), counter=name, inc_width=inc))
    return regs


def register(cfg, name: str) -> Register:
    """The register called ``name``.

    Raises
    ------
    KeyError
        No such register.
    """
    for r in registers(cfg):
        if r.name == name:
            return r
    raise KeyError(name)


_ACCESS = {"const": "RO (const)", "ro": "RO", "rw": "RW", "pulse": "WO (pulse)",
           "w1c": "RW1C", "cnt_lo": "RO (counter)", "cnt_hi": "RO (counter)"}


def regmap_markdown(cfg) -> str:
    """docs/registers.md for ``cfg`` (constant values are this build's)."""
    regs = registers(cfg)
    out = [
        "# sparsemac control registers", "",
        "Generated by `python -m sparsemac.hw.top.regmap --md` from `hw/top/regmap.py` (the one "
        f"definition; do not edit by hand). Build: `{cfg.name}`. AXI4-Lite, 32-bit registers, "
        "byte offsets. "
        "Unmapped offsets and writes to read-only registers answer SLVERR (nothing changes). "
        "Reading a counter's `_LO` word snapshots its `_HI` word, so LO-then-HI reads are "
        "atomic.", "",
        "| offset | name | access | reset | description |", "|---|---|---|---|---|",
    ]
    for r in regs:
        out.append(f"| 0x{r.offset:03X} | {r.name} | {_ACCESS[r.kind]} | 0x{r.reset:08X} | "
                   f"{r.doc} |")
    out += ["", "## Fields", ""]
    for r in regs:
        if len(r.fields) == 1 and r.fields[0].width == 32 and r.kind != "const":
            continue
        out += [f"### {r.name} (0x{r.offset:03X})", "", "| bits | field | description |",
                "|---|---|---|"]
        for f in r.fields:
            bits = f"{f.lsb + f.width - 1}:{f.lsb}" if f.width > 1 else f"{f.lsb}"
            val = f" (this build: {f.value})" if r.kind == "const" else ""
            out.append(f"| {bits} | {f.name} | {f.doc}{val} |")
        out.append("")
    out += ["## Error codes (STATUS.error_code)", "", "| code | name | meaning |", "|---|---|---|"]
    for c in ErrorCode:
        out.append(f"| {int(c)} | {c.name} | {_doc_of(c)} |")
    return "\n".join(out) + "\n"


def _doc_of(code: ErrorCode) -> str:
    import inspect

    from sparsemac.golden import descriptors as gd

    src = inspect.getsource(gd.ErrorCode)
    for line in src.splitlines():
        if line.strip().startswith(f"{code.name} =") and "#:" in line:
            return line.split("#:", 1)[1].strip()
    return ""


def regmap_c_header(cfg) -> str:
    """A C header: offsets, field shifts/masks, this build's constants and the error codes."""
    p = "SPARSEMAC"
    out = ["/* Generated by `python -m sparsemac.hw.top.regmap --c` from hw/top/regmap.py. "
           "Do not edit. */",
           f"#ifndef {p}_REGS_H", f"#define {p}_REGS_H", ""]
    for r in registers(cfg):
        out.append(f"#define {p}_{r.name}_OFFSET 0x{r.offset:03X}u")
        if r.kind == "const":
            out.append(f"#define {p}_{r.name}_VALUE 0x{r.value:08X}u")
        if len(r.fields) > 1 or r.fields[0].width < 32:
            for f in r.fields:
                n = f"{p}_{r.name}_{f.name.upper()}"
                out.append(f"#define {n}_SHIFT {f.lsb}u")
                out.append(f"#define {n}_MASK 0x{f.mask:08X}u")
    out += ["", f"#define {p}_DESC_BYTES {DESC_BYTES}u", ""]
    out += [f"enum {p.lower()}_error {{"]
    out += [f"    {p}_ERR_{c.name} = {int(c)}," for c in ErrorCode]
    out += ["};", "", f"#endif /* {p}_REGS_H */"]
    return "\n".join(out) + "\n"


def main(argv=None) -> int:
    """``python -m sparsemac.hw.top.regmap (--md | --c) [--config FILE] [-o OUT]``."""
    from sparsemac.hw.config import load_config

    ap = argparse.ArgumentParser(prog="python -m sparsemac.hw.top.regmap",
                                 description=__doc__.split("\n")[0])
    g = ap.add_mutually_exclusive_group(required=True)
    g.add_argument("--md", action="store_true", help="markdown (docs/registers.md)")
    g.add_argument("--c", action="store_true", help="C header")
    ap.add_argument("--config", help="config YAML (default: the 'default' preset)")
    ap.add_argument("-o", "--output", help="write here instead of stdout")
    args = ap.parse_args(argv)
    cfg = load_config(args.config)
    text = regmap_markdown(cfg) if args.md else regmap_c_header(cfg)
    if args.output:
        with open(args.output, "w") as fh:
            fh.write(text)
    else:
        print(text, end="")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
