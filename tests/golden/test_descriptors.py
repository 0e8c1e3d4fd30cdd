"""Descriptor format (docs/spec.md section 8): layout, pack/unpack, validation error codes."""

from __future__ import annotations

import struct
from types import SimpleNamespace

import pytest
from sparsemac.golden.desc_rules import validate_descriptor, validate_table
from sparsemac.golden.descriptors import (
    DESC_BYTES,
    Descriptor,
    ErrorCode,
    Flags,
    Opcode,
    buffer_sizes,
    conv2d_descriptor,
    matmul_descriptor,
    pack_descriptor,
    unpack_descriptor,
)
from sparsemac.golden.formats import FormatErrorCode
from sparsemac.golden.ops import conv_output_shape

E = ErrorCode
CFG = SimpleNamespace(formats=("dense", "bitmap", "block", "nm"), group_size=16, block_size=8,
                      nm_max_m=32, axi_data_width=64, lut_enabled=True)
WIN = 1 << 20

#: (name, offset, struct code) straight from the spec table, independent of the implementation
SPEC = [("magic", 0, "I"), ("opcode", 4, "B"), ("format", 5, "B"), ("param_a", 6, "B"),
        ("param_b", 7, "B"), ("flags", 8, "H"), ("reserved0", 10, "H"), ("weights", 12, "I"),
        ("acts", 16, "I"), ("out", 20, "I"), ("quant", 24, "I"), ("lut", 28, "I"),
        ("m", 32, "I"), ("k", 36, "I"), ("n", 40, "I"), ("c", 44, "H"), ("h", 46, "H"),
        ("w", 48, "H"), ("kh", 50, "B"), ("kw", 51, "B"), ("stride_h", 52, "B"),
        ("stride_w", 53, "B"), ("pad_h", 54, "B"), ("pad_w", 55, "B"), ("dil_h", 56, "B"),
        ("dil_w", 57, "B"), ("col_split", 58, "H"), ("reserved2", 60, "I")]


def test_layout_matches_the_spec_table(seed, rng):
    for _ in range(50):
        vals = {name: int(rng.integers(0, 1 << (8 * struct.calcsize(code))))
                for name, _, code in SPEC}
        raw = Descriptor(**vals).pack()
        assert len(raw) == DESC_BYTES == 64
        for name, off, code in SPEC:
            got = struct.unpack_from("<" + code, raw, off)[0]
            assert got == vals[name], f"seed={seed}: {name} at {off}: {got} != {vals[name]}"
        assert unpack_descriptor(raw) == Descriptor(**vals), f"seed={seed}: round trip"
    assert Descriptor().pack()[:4] == b"SPMD"


def test_pack_errors():
    with pytest.raises(ValueError, match=r"^m must be between 0 and 4294967295, not -1$"):
        Descriptor(m=-1).pack()
    with pytest.raises(ValueError, match=r"^kh must be between 0 and 255, not 256$"):
        Descriptor(kh=256).pack()
    with pytest.raises(TypeError, match=r"^n must be an integer, not 2.0$"):
        pack_descriptor(Descriptor(n=2.0))
    with pytest.raises(ValueError, match=r"^descriptor must be 64 bytes, not 63$"):
        unpack_descriptor(bytes(63))
    with pytest.raises(ValueError, match=r"^fmt must be one of dense, bitmap, block, nm, "
                                         r"not 'csr'$"):
        matmul_descriptor(m=1, k=1, n=1, fmt="csr")


def good_matmul(**kw):
    args = dict(m=16, k=64, n=8, fmt="dense", weights=0x1000, acts=0x2000, out=0x3000,
                quant=0x4000, lut=0x5000, flags=Flags.REQUANT | Flags.LUT)
    args.update(kw)
    return matmul_descriptor(**args)


def good_conv(**kw):
    args = dict(c=3, h=10, w=9, kout=8, kh=3, kw=2, stride=(2, 1), pad=(1, 0),
                dilation=(1, 2), weights=0x1000, acts=0x2000, out=0x3000, quant=0x4000)
    args.update(kw)
    return conv2d_descriptor(**args)


@pytest.mark.parametrize("fmt", ["dense", "bitmap", "block", "nm"])
def test_valid_descriptors(fmt):
    assert validate_descriptor(good_matmul(fmt=fmt), CFG, window_bytes=WIN) == E.OK
    assert validate_descriptor(good_conv(fmt=fmt).pack(), CFG, window_bytes=WIN) == E.OK


def test_conv_shapes_follow_section_2_2(seed, rng):
    for _ in range(40):
        h, w = int(rng.integers(1, 40)), int(rng.integers(1, 40))
        kh, kw = int(rng.integers(1, 6)), int(rng.integers(1, 6))
        st = (int(rng.integers(1, 4)), int(rng.integers(1, 4)))
        pad = (int(rng.integers(0, 3)), int(rng.integers(0, 3)))
        dil = (int(rng.integers(1, 3)), int(rng.integers(1, 3)))
        d = good_conv(h=h, w=w, kh=kh, kw=kw, stride=st, pad=pad, dilation=dil)
        try:
            oh, ow = conv_output_shape((h, w), (kh, kw), st, pad, dil)
        except ValueError:
            assert validate_descriptor(d, CFG, window_bytes=WIN) == E.BAD_SHAPE, f"seed={seed}"
            continue
        assert (d.m, d.k, d.n) == (8, 3 * kh * kw, oh * ow), f"seed={seed}: {d}"
        assert validate_descriptor(d, CFG, window_bytes=WIN) == E.OK, f"seed={seed}: {d}"


CASES = [
    ("magic", lambda d: d.replace(magic=0x444D5054), E.BAD_DESC_MAGIC),
    ("opcode", lambda d: d.replace(opcode=2), E.BAD_OPCODE),
    ("format code", lambda d: d.replace(format=4), E.BAD_FORMAT),
    ("bitmap G", lambda d: d.replace(format=1, param_a=8), E.BAD_PARAM),
    ("block B", lambda d: d.replace(format=2, param_a=4), E.BAD_PARAM),
    ("nm M not pow2", lambda d: d.replace(format=3, param_a=1, param_b=6), E.BAD_PARAM),
    ("nm N > M", lambda d: d.replace(format=3, param_a=5, param_b=4), E.BAD_PARAM),
    ("nm N = 0", lambda d: d.replace(format=3, param_a=0, param_b=4), E.BAD_PARAM),
    ("dense params", lambda d: d.replace(param_a=1), E.BAD_PARAM),
    ("unknown flag", lambda d: d.replace(flags=0x10 | Flags.REQUANT), E.BAD_FLAGS),
    ("LUT without REQUANT", lambda d: d.replace(flags=Flags.LUT), E.BAD_FLAGS),
    ("LATE_TABLES without REQUANT", lambda d: d.replace(flags=Flags.LATE_TABLES), E.BAD_FLAGS),
    ("unknown flag 0x40", lambda d: d.replace(flags=0x40 | Flags.REQUANT), E.BAD_FLAGS),
    ("reserved0", lambda d: d.replace(reserved0=1), E.BAD_FLAGS),
    ("reserved2", lambda d: d.replace(reserved2=1), E.BAD_FLAGS),
    ("conv field on matmul", lambda d: d.replace(kh=1), E.BAD_FLAGS),
    ("M = 0", lambda d: d.replace(m=0), E.BAD_SHAPE),
    ("K = 0", lambda d: d.replace(k=0), E.BAD_SHAPE),
    ("N negative", lambda d: d.replace(n=(-5) & 0xFFFFFFFF), E.BAD_SHAPE),
    ("acts misaligned", lambda d: d.replace(acts=0x2004), E.MISALIGNED),
    ("lut misaligned", lambda d: d.replace(lut=0x5001), E.MISALIGNED),
    ("out past window", lambda d: d.replace(out=WIN - 16 * 8 + 8), E.OUT_OF_WINDOW),
    ("weights header past window", lambda d: d.replace(weights=WIN - 24), E.OUT_OF_WINDOW),
    ("out exactly fits", lambda d: d.replace(out=WIN - 16 * 8), E.OK),
    ("LATE_TABLES with REQUANT",
     lambda d: d.replace(flags=Flags.REQUANT | Flags.LUT | Flags.LATE_TABLES), E.OK),
    # two faults: the earlier check wins
    ("opcode and shape", lambda d: d.replace(opcode=9, m=0), E.BAD_OPCODE),
    ("shape and alignment", lambda d: d.replace(m=0, acts=3), E.BAD_SHAPE),
    ("params and flags", lambda d: d.replace(format=1, param_a=3, reserved0=1), E.BAD_PARAM),
]


@pytest.mark.parametrize("name,mutate,code", CASES, ids=[c[0] for c in CASES])
def test_matmul_error_codes(name, mutate, code):
    d = mutate(good_matmul())
    assert validate_descriptor(d, CFG, window_bytes=WIN) == code, d
    assert validate_descriptor(d.pack(), CFG, window_bytes=WIN) == code


CONV_CASES = [
    ("C = 0", dict(c=0), E.BAD_SHAPE),
    ("stride 0", dict(stride_w=0), E.BAD_SHAPE),
    ("dilation 0", dict(dil_h=0), E.BAD_SHAPE),
    ("kernel larger than padded input", dict(kh=13, k=3 * 13 * 2), E.BAD_SHAPE),
    ("k inconsistent", dict(k=17), E.BAD_SHAPE),
    ("n inconsistent", dict(n=1), E.BAD_SHAPE),
]


@pytest.mark.parametrize("name,changes,code", CONV_CASES, ids=[c[0] for c in CONV_CASES])
def test_conv_error_codes(name, changes, code):
    d = good_conv().replace(**changes)
    assert validate_descriptor(d, CFG, window_bytes=WIN) == code, d


def test_build_dependent_checks():
    dense_only = SimpleNamespace(**{**vars(CFG), "formats": ("dense",)})
    assert validate_descriptor(good_matmul(fmt="nm"), dense_only, window_bytes=WIN) == \
        E.FORMAT_UNSUPPORTED
    no_lut = SimpleNamespace(**{**vars(CFG), "lut_enabled": False})
    assert validate_descriptor(good_matmul(), no_lut, window_bytes=WIN) == E.BAD_FLAGS
    small_m = SimpleNamespace(**{**vars(CFG), "nm_max_m": 8})
    assert validate_descriptor(good_matmul(fmt="nm", nm=(1, 16)), small_m, window_bytes=WIN) \
        == E.BAD_PARAM
    wide = SimpleNamespace(**{**vars(CFG), "axi_data_width": 256})
    assert validate_descriptor(good_matmul(acts=0x2010), wide, window_bytes=WIN) == \
        E.MISALIGNED


def test_buffer_sizes():
    d = good_matmul(flags=0)
    assert buffer_sizes(d) == {"weights": 32, "acts": 64 * 8, "out": 16 * 8 * 4, "quant": 0,
                               "lut": 0}
    c = good_conv(flags=Flags.REQUANT | Flags.LUT)
    assert buffer_sizes(c) == {"weights": 32, "acts": 3 * 10 * 9, "out": 8 * c.n,
                               "quant": 8 * 16, "lut": 256}


def test_table_checks():
    kw = dict(mem_base=0x1000, mem_limit=0x2000, axi_bytes=8)
    assert validate_table(0x1000, 64, **kw) == E.OK            # exactly fills the window
    assert validate_table(0x1000, 65, **kw) == E.DESC_COUNT    # one past the end
    assert validate_table(0x1000, 0, **kw) == E.DESC_COUNT
    assert validate_table(0x1004, 1, **kw) == E.MISALIGNED
    assert validate_table(0x0FC0, 1, **kw) == E.OUT_OF_WINDOW
    assert validate_table(0x2000, 1, **kw) == E.OUT_OF_WINDOW


def test_error_codes_mirror_format_errors():
    for c in FormatErrorCode:
        assert E[c.name].value == c.value
    assert len({int(c) for c in E}) == len(E)
    assert all(0 <= int(c) < 256 for c in E)   # fits STATUS.error_code
    assert int(Opcode.CONV2D) == 1
