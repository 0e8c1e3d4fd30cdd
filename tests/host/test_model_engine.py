"""Model engine (host/model_engine.py): outputs from the image alone equal the compiler's
golden expectations; corrupted descriptors and weight images give the golden error codes."""

import struct

import numpy as np
import pytest
from sparsemac.golden.desc_rules import validate_descriptor
from sparsemac.golden.descriptors import DESC_BYTES, ErrorCode, Flags, unpack_descriptor
from sparsemac.golden.format_check import parse_weights
from sparsemac.golden.formats import FormatError
from sparsemac.host import compile_network, layer_cycles, network_from_dict, run_model
from sparsemac.host.model_engine import architecture_view, read_output
from sparsemac.hw.config import AcceleratorConfig

from .nets import valid_network

CFG = AcceleratorConfig()


def _run(cn, image=None, cfg=CFG, **regs):
    """The architecture model (the random networks of tests/host/nets.py use N:M patterns and
    sizes beyond the generated hardware's limits, which test_hardware_limits_* cover)."""
    kw = dict(base=cn.base, desc_base=cn.desc_base, desc_count=cn.desc_count,
              limits="architecture") | regs
    return run_model(cn.image if image is None else image, cfg=cfg, **kw)


def _check_equal(cn, seed):
    run = _run(cn)
    assert run.ok, f"seed={seed}: {run.error_code.name} at {run.error_desc}: {run.message}"
    assert len(run.layers) == len(cn.layers)
    for i, cl in enumerate(cn.layers):
        got = read_output(run.image, cl.descriptor)
        np.testing.assert_array_equal(got, cl.expected, err_msg=f"seed={seed} layer {i}")
        np.testing.assert_array_equal(run.layers[i].output, cl.expected)
    # nothing outside the output buffers changed
    outs = [(cl.descriptor.out, cl.regions["out"].size) for cl in cn.layers]
    mask = np.ones(len(cn.image), dtype=bool)
    for off, size in outs:
        mask[off:off + size] = False
    before, after = np.frombuffer(cn.image, np.uint8), np.frombuffer(bytes(run.image), np.uint8)
    assert np.array_equal(before[mask], after[mask]), f"seed={seed}: model wrote outside outputs"
    return run


@pytest.mark.parametrize("fmt", ["dense", "bitmap", "block", "nm"])
@pytest.mark.parametrize("conv", [True, False])
@pytest.mark.parametrize("lut", [True, False])
def test_model_equals_compiler(rng, seed, fmt, conv, lut):
    for _ in range(2):
        _, net = valid_network(rng, conv=conv, lut=lut, formats=(fmt,))
        cn = compile_network(net, CFG)
        assert all(cl.spec.fmt == fmt for cl in cn.layers)
        assert any(cl.spec.op == "conv2d" for cl in cn.layers) == conv
        assert all((cl.lut is not None) == lut for cl in cn.layers)
        _check_equal(cn, seed)


@pytest.mark.parametrize("rep", range(4))
def test_model_equals_compiler_mixed(rng, seed, rep):
    _, net = valid_network(rng, n_layers=4)
    cfg = AcceleratorConfig(group_size=(8, 16, 32)[rep % 3], block_size=(2, 4, 8, 16)[rep],
                            axi_data_width=(32, 64, 128, 256)[rep], acc_width=(20, 32, 32, 40)[rep],
                            ring_payload_width=256)
    cn = compile_network(net, cfg)
    run = run_model(cn.image, base=cn.base, desc_base=cn.desc_base, desc_count=cn.desc_count,
                    cfg=cfg, limits="architecture")
    assert run.ok, f"seed={seed}: {run.message}"
    for i, cl in enumerate(cn.layers):
        np.testing.assert_array_equal(read_output(run.image, cl.descriptor), cl.expected,
                                      err_msg=f"seed={seed} layer {i}")


def test_accumulator_overflow_wraps_like_golden():
    # K = 64 products of 127 * 127 overflow acc_width = 20 bits: model and compiler both wrap
    net = network_from_dict({"input": {"values": np.full((64, 2), 127)},
                             "layers": [{"op": "matmul", "weights": np.full((3, 64), 127),
                                         "requant": False}]})
    cfg = AcceleratorConfig(acc_width=20)
    cn = compile_network(net, cfg)
    want = (64 * 127 * 127 + 2**19) % 2**20 - 2**19
    assert np.all(cn.layers[0].expected == want)
    _run(cn, cfg=cfg)
    run = run_model(cn.image, base=cn.base, desc_base=cn.desc_base, desc_count=1, cfg=cfg)
    assert np.all(read_output(run.image, cn.layers[0].descriptor) == want)


def _demo(rng):
    d = {"seed": int(rng.integers(1 << 30)), "input": {"shape": [2, 6, 6]}, "layers": [
        {"op": "conv2d", "out_channels": 4, "kernel": 3, "format": "bitmap",
         "activation": "relu"},
        {"op": "matmul", "out_features": 5, "format": "nm", "nm": "2:4"},
        {"op": "matmul", "out_features": 3, "format": "block", "density": 0.5}]}
    return compile_network(network_from_dict(d), CFG)


def _desc_field(image, cn, i, fmt, offset, value):
    img = bytearray(image)
    struct.pack_into(fmt, img, cn.desc_offset + DESC_BYTES * i + offset, value)
    return img


@pytest.mark.parametrize("i", [0, 1, 2])
@pytest.mark.parametrize("offset,fmt,value,code", [
    (0, "<I", 0x12345678, ErrorCode.BAD_DESC_MAGIC),
    (4, "<B", 7, ErrorCode.BAD_OPCODE),               # past the last opcode of the spec
    (4, "<B", 2, ErrorCode.BAD_FORMAT),               # a max pool takes no weight format
    (5, "<B", 4, ErrorCode.BAD_FORMAT),
    (8, "<H", 0x10, ErrorCode.BAD_FLAGS),
    (58, "<H", 1, ErrorCode.BAD_SHAPE),     # col_split 1: not a multiple of cols
    (32, "<I", 0, ErrorCode.BAD_SHAPE),
    (20, "<I", 4, ErrorCode.MISALIGNED),             # out
    (12, "<I", 0x7FFF_FFF8, ErrorCode.OUT_OF_WINDOW),  # weights
])
def test_corrupted_descriptor(rng, seed, i, offset, fmt, value, code):
    cn = _demo(rng)
    img = _desc_field(cn.image, cn, i, fmt, offset, value)
    raw = img[cn.desc_offset + DESC_BYTES * i:cn.desc_offset + DESC_BYTES * (i + 1)]
    # the golden validator with every opcode of the spec (the architecture model's view)
    assert validate_descriptor(unpack_descriptor(raw), architecture_view(CFG),
                               window_bytes=cn.window_bytes) == code
    run = _run(cn, img)
    assert (run.error_code, run.error_desc) == (code, i), f"seed={seed}: {run.message}"
    assert len(run.layers) == i  # earlier descriptors completed, later ones never ran
    for cl in cn.layers[:i]:
        assert np.array_equal(read_output(run.image, cl.descriptor), cl.expected)


def test_format_not_built_and_table_errors(rng):
    cn = _demo(rng)
    run = _run(cn, cfg=AcceleratorConfig(formats=("dense", "bitmap", "block")))
    assert (run.error_code, run.error_desc) == (ErrorCode.FORMAT_UNSUPPORTED, 1)
    run = _run(cn, cfg=AcceleratorConfig(group_size=32))
    assert (run.error_code, run.error_desc) == (ErrorCode.BAD_PARAM, 0)
    assert _run(cn, desc_count=0).error_code == ErrorCode.DESC_COUNT
    assert _run(cn, desc_base=cn.desc_base + 4).error_code == ErrorCode.MISALIGNED
    assert _run(cn, desc_base=cn.base - 64).error_code == ErrorCode.OUT_OF_WINDOW
    assert _run(cn, desc_count=1 + cn.window_bytes // 64).error_code == ErrorCode.DESC_COUNT
    run = _run(cn, desc_count=1)
    assert run.ok and len(run.layers) == 1


def _weight_image(cn, i):
    """Offset and size of layer ``i``'s first per-tile weight image."""
    return cn.layers[i].descriptor.weights, cn.layers[i].slices[0].nbytes


@pytest.mark.parametrize("i,offset,value,code", [
    (0, 0, 0x00, ErrorCode.BAD_MAGIC),      # magic byte
    (1, 4, 7, ErrorCode.BAD_FORMAT),        # format code
    (1, 7, 1, ErrorCode.BAD_PARAM),         # reserved byte
    (2, 12, 0, ErrorCode.BAD_SHAPE),        # cols = 0
    (0, 28, 0x21, ErrorCode.BAD_SIZE),      # total not a multiple of 32 (and not the length)
    (0, 16, 0x28, ErrorCode.BAD_SECTION),   # sec_a misaligned
    (0, -1, 0, ErrorCode.BAD_PTR),          # row_ptr[0] != 0 (bitmap section A)
    (1, -2, 0, ErrorCode.BAD_INDEX),        # nm index >= M (section B)
    (2, -3, 0, ErrorCode.BAD_INDEX),        # blk_col >= nbc (section B)
])
def test_corrupted_weight_image(rng, seed, i, offset, value, code):
    cn = _demo(rng)
    w, total = _weight_image(cn, i)
    pw = cn.layers[i].slices[0]
    img = bytearray(cn.image)
    if offset == -1:
        struct.pack_into("<I", img, w + pw.sec_a, 1)
    elif offset == -2:
        img[w + pw.sec_b] = pw.param_b
    elif offset == -3:
        struct.pack_into("<H", img, w + pw.sec_b, pw.ngroups)
    else:
        img[w + offset] = value
    with pytest.raises(FormatError) as info:  # the golden validator's code
        parse_weights(np.frombuffer(bytes(img[w:w + total]), np.uint8))
    assert info.value.code == code, f"seed={seed}: {info.value}"
    run = _run(cn, img)
    assert (run.error_code, run.error_desc) == (code, i), f"seed={seed}: {run.message}"


def test_image_header_disagrees_with_descriptor(rng):
    cn = _demo(rng)
    img = _desc_field(cn.image, cn, 1, "<B", 6, 1)  # descriptor nm N = 1, image says 2
    run = _run(cn, img)
    assert (run.error_code, run.error_desc) == (ErrorCode.BAD_PARAM, 1), run.message
    w, _ = _weight_image(cn, 2)
    img = bytearray(cn.image)
    struct.pack_into("<I", img, w + 28, cn.window_bytes)  # total runs past the window
    run = _run(cn, img)
    assert (run.error_code, run.error_desc) == (ErrorCode.OUT_OF_WINDOW, 2), run.message
    d = cn.layers[0].descriptor
    img = bytearray(cn.image)
    struct.pack_into("<i", img, d.quant + 4, 0)  # mult = 0 in the first quant record
    run = _run(cn, img)
    assert (run.error_code, run.error_desc) == (ErrorCode.BAD_PARAM, 0), run.message


@pytest.mark.parametrize("tiles", [1, 2, 3, 5])
def test_per_tile_images(rng, seed, tiles):
    cfg = AcceleratorConfig(tiles=tiles)
    _, net = valid_network(rng, n_layers=2)
    cn = compile_network(net, cfg, split="rows")
    run = run_model(cn.image, base=cn.base, desc_base=cn.desc_base, desc_count=cn.desc_count,
                    cfg=cfg, limits="architecture")
    assert run.ok, f"seed={seed}: {run.message}"
    for lr, cl in zip(run.layers, cn.layers, strict=True):
        assert len(lr.slices) == len(cl.slices) <= tiles
        np.testing.assert_array_equal(lr.output, cl.expected, err_msg=f"seed={seed}")
    # the same image on fewer tiles: the slices no longer cover m -> BAD_SHAPE
    big = [i for i, cl in enumerate(cn.layers) if len(cl.slices) > 1]
    if big:
        run = run_model(cn.image, base=cn.base, desc_base=cn.desc_base,
                        desc_count=cn.desc_count, cfg=AcceleratorConfig(tiles=1),
                        limits="architecture")
        assert (run.error_code, run.error_desc) == (ErrorCode.BAD_SHAPE, big[0]), run.message


def test_layer_cycles_against_roofline(rng, seed):
    cn = _demo(rng)
    run = _run(cn)
    for lr, cl in zip(run.layers, cn.layers, strict=True):
        c = layer_cycles(lr, CFG)
        st = cl.stats
        roof = st.dense_roofline_cycles if cl.spec.fmt == "dense" else st.roofline_cycles
        assert c["roofline_cycles"] == roof and c["memory_cycles"] == st.memory_cycles
        assert c["cycles"] >= max(c["tile_cycles"], st.memory_cycles), f"seed={seed}"
        assert c["cycles"] >= roof, f"seed={seed}: {c} below the roofline {roof}"


def test_accumulate_flag_adds_previous_accumulators(rng, seed):
    # one matmul layer without requant, then a hand-made table in an extra page: the same
    # descriptor twice, the second with ACCUMULATE and its own output buffer
    net = network_from_dict({"seed": int(rng.integers(1 << 30)), "input": {"shape": [9, 3]},
                             "layers": [{"op": "matmul", "out_features": 4, "requant": False,
                                         "format": "bitmap"}]})
    cn = compile_network(net, CFG)
    d0 = cn.layers[0].descriptor
    d1 = d0.replace(flags=d0.flags | Flags.ACCUMULATE, out=cn.window_bytes + 256)
    img = bytearray(cn.image) + bytearray(4096)
    img[cn.window_bytes:cn.window_bytes + 128] = d0.pack() + d1.pack()
    run = run_model(img, base=cn.base, desc_base=cn.base + cn.window_bytes, desc_count=2,
                    cfg=CFG, limits="architecture")
    assert run.ok, run.message
    acc = cn.layers[0].expected
    np.testing.assert_array_equal(read_output(run.image, d1), (2 * acc + 2**31) % 2**32 - 2**31,
                                  err_msg=f"seed={seed}")


@pytest.mark.parametrize("m", [4, 8, 16])
def test_nm_n_runs_as_the_next_power_of_two(rng, seed, m):
    """Any N:M of a network runs on the hardware: the compiler packs N rounded up to a power
    of two (the only N the tiles take) and the result is the N:M-pruned layer's, bit-exact.
    Every N of M: 2 and 4 exactly at a power of two, 3 and 5 just past one."""
    for n in range(1, m + 1):
        net = network_from_dict({
            "seed": int(rng.integers(1 << 30)), "input": {"shape": [3 * m + 1, 5]},
            "layers": [{"op": "matmul", "out_features": 6, "format": "nm", "prune": "nm",
                        "nm": f"{n}:{m}"}]})
        cn = compile_network(net, CFG)
        d = cn.layers[0].descriptor
        assert (d.param_a, d.param_b) == (1 << (n - 1).bit_length(), m), (seed, n, m)
        assert d.param_a >= n and d.param_a < 2 * n
        groups = np.pad(cn.layers[0].weights != 0, ((0, 0), (0, (-(3 * m + 1)) % m)))
        assert groups.reshape(6, -1, m).sum(axis=2).max() <= n    # pruned to the asked N
        run = run_model(cn.image, base=cn.base, desc_base=cn.desc_base,
                        desc_count=cn.desc_count, cfg=CFG)      # the hardware's limits
        assert run.ok, f"seed={seed} {n}:{m}: {run.error_code.name}: {run.message}"
        np.testing.assert_array_equal(read_output(run.image, d), cn.layers[0].expected,
                                      err_msg=f"seed={seed} {n}:{m}")


def test_hardware_limits_are_the_default(rng, seed):
    """run_model mirrors the RTL by default (golden.hardware_descriptor_code and the tiles'
    activation buffers): ACCUMULATE is BAD_FLAGS, m past 16 bits BAD_SHAPE, an N:M N that
    is not a power of two BAD_PARAM, activations beyond the tile buffers BAD_SHAPE; with
    ``limits="architecture"`` the rules of docs/spec.md alone."""
    net = network_from_dict({"seed": int(rng.integers(1 << 30)), "input": {"shape": [9, 3]},
                             "layers": [{"op": "matmul", "out_features": 4, "requant": False,
                                         "format": "bitmap"}]})
    cn = compile_network(net, CFG)
    d0 = cn.layers[0].descriptor
    off = cn.desc_base - cn.base
    cases = [
        (dict(flags=d0.flags | Flags.ACCUMULATE), ErrorCode.BAD_FLAGS, ErrorCode.OK),
        (dict(m=1 << 16), ErrorCode.BAD_SHAPE, ErrorCode.OUT_OF_WINDOW),
        (dict(format=3, param_a=3, param_b=4), ErrorCode.BAD_PARAM, ErrorCode.BAD_FORMAT),
        # K x N activations past the tile's im2col entries (ceil(N / cols) * K > depth)
        (dict(n=CFG.cols * (CFG.act_buf_depth // d0.k + 1)), ErrorCode.BAD_SHAPE,
         ErrorCode.OK),
    ]
    for change, hw_code, arch_code in cases:
        img = bytearray(cn.image) + bytearray(1 << 18)    # room for the large buffers
        img[off:off + 64] = d0.replace(**change).pack()
        got = {lim: run_model(img, base=cn.base, desc_base=cn.desc_base, desc_count=1, cfg=CFG,
                              limits=lim).error_code for lim in ("hardware", "architecture")}
        assert got["hardware"] == hw_code, f"seed={seed} {change}: {got}"
        assert got["architecture"] == arch_code, f"seed={seed} {change}: {got}"
    with pytest.raises(ValueError, match="^limits must be hardware or architecture, not 'rtl'$"):
        run_model(cn.image, base=cn.base, desc_base=cn.desc_base, desc_count=1, cfg=CFG,
                  limits="rtl")
