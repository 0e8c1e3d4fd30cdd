"""Weight image formats (docs/spec.md section 3): hand-written images, an independent
struct-based decoder, round trips, and every FormatError code triggered by corruption."""

import pickle
import struct

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from sparsemac.golden import FormatError, pack_weights, packed_size, parse_weights, unpack_weights
from sparsemac.golden.formats import FormatErrorCode as C

from .hyp import hsettings
from .util import fit_nm, rand_int8, show


def hexbytes(s: str) -> bytes:
    return bytes.fromhex(s.replace("|", " "))


def image_of(header_hex: str, sections: dict, total: int) -> bytes:
    """Build the expected image from hand-written hex: header + {offset: hex} + zero gaps."""
    img = bytearray(total)
    img[:32] = hexbytes(header_hex)
    for off, h in sections.items():
        b = hexbytes(h)
        img[off:off + len(b)] = b
    return bytes(img)


# ----------------------------------------------------------------------------------------------
# Hand-worked tiny images (expected bytes written from the spec, not from the code)

HAND = [
    # dense 2x3: [[1, -2, 3], [-128, 0, 127]]
    ("dense", {}, [[1, -2, 3], [-128, 0, 127]],
     "53504D57 00000000 02000000 03000000 20000000 40000000 40000000 40000000",
     {32: "01 FE 03 80 00 7F"}, 64),
    # bitmap G=8, 3x10: row0 has 5 at col1 and -1 at col8, row1 empty, row2 7 @0, -128 @9
    ("bitmap", {"group_size": 8},
     [[0, 5, 0, 0, 0, 0, 0, 0, -1, 0], [0] * 10, [7, 0, 0, 0, 0, 0, 0, 0, 0, -128]],
     "53504D57 01080000 03000000 0A000000 20000000 40000000 60000000 80000000",
     {32: "00000000 02000000 02000000 04000000", 64: "02 01 00 00 01 02", 96: "05 FF 07 80"},
     128),
    # bitmap G=16, 1x12: -4 @2 and 3 @9 -> mask 0x0204, little-endian bytes 04 02
    ("bitmap", {"group_size": 16}, [[0, 0, -4, 0, 0, 0, 0, 0, 0, 3, 0, 0]],
     "53504D57 01100000 01000000 0C000000 20000000 40000000 60000000 80000000",
     {32: "00000000 02000000", 64: "04 02", 96: "FC 03"}, 128),
    # block B=2, 3x5: blocks (0,0), (0,2), (1,2) stored; (0,2) and (1,2) zero-padded
    ("block", {"block_size": 2}, [[1, 0, 0, 0, 0], [0, 2, 0, 0, 3], [0, 0, 0, 0, -5]],
     "53504D57 02020000 03000000 05000000 20000000 40000000 60000000 80000000",
     {32: "00000000 02000000 03000000", 64: "0000 0200 0200",
      96: "01000002 00000300 FB000000"}, 128),
    # nm 2:4, 2x6: row0 g0 {1: 9, 3: -7}, g1 {0: 4} + spare idx 1; row1 all spares
    ("nm", {"nm": (2, 4)}, [[0, 9, 0, -7, 4, 0], [0] * 6],
     "53504D57 03020400 02000000 06000000 20000000 40000000 60000000 60000000",
     {32: "09 F9 04 00 00 00 00 00", 64: "01 03 00 01 00 01 00 01"}, 96),
    # nm 3:4, 1x5: last group has one column inside K, spares 1, 2 point past K and hold 0
    ("nm", {"nm": (3, 4)}, [[-128, 0, 0, 0, 6]],
     "53504D57 03030400 01000000 05000000 20000000 40000000 60000000 60000000",
     {32: "80 00 00 06 00 00", 64: "00 01 02 00 01 02"}, 96),
]


@pytest.mark.parametrize("fmt, kw, W, header, sections, total", HAND,
                         ids=[f"{h[0]}-{i}" for i, h in enumerate(HAND)])
def test_hand_worked_image(fmt, kw, W, header, sections, total):
    expected = image_of(header, sections, total)
    p = pack_weights(np.array(W), fmt, **kw)
    actual = p.image.tobytes()
    assert actual == expected, f"{fmt}:\nexpected {expected.hex(' ')}\nactual   {actual.hex(' ')}"
    assert np.array_equal(unpack_weights(expected), np.array(W, dtype=np.int8))
    assert p.nbytes == total and p.nnz == int(np.count_nonzero(W))


def test_header_fields_and_views():
    W = np.array([[0, 5, 0, 0, 0, 0, 0, 0, -1, 0], [0] * 10, [7, 0, 0, 0, 0, 0, 0, 0, 0, -128]])
    p = pack_weights(W, "bitmap", group_size=8)
    magic, fmt, g, b, res, rows, cols, sa, sb, sc, total = struct.unpack_from("<I4B6I", p.image)
    assert (magic, fmt, g, b, res, rows, cols) == (0x574D5053, 1, 8, 0, 0, 3, 10)
    assert p.image[:4].tobytes() == b"SPMW"
    assert (sa, sb, sc, total) == (p.sec_a, p.sec_b, p.sec_c, p.nbytes) == (32, 64, 96, 128)
    assert p.row_ptr.tolist() == [0, 2, 2, 4]
    assert p.masks.tolist() == [[0b10, 0b1], [0, 0], [0b1, 0b10]]
    assert p.values.tolist() == [5, -1, 7, -128]
    assert not p.image.flags.writeable
    q = pack_weights(np.array([[1, 0, 0, 0, 0], [0, 2, 0, 0, 3], [0, 0, 0, 0, -5]]), "block",
                     block_size=2)
    assert q.blk_ptr.tolist() == [0, 2, 3] and q.blk_col.tolist() == [0, 2, 2]
    assert q.values.shape == (3, 2, 2) and q.values[1].tolist() == [[0, 0], [3, 0]]
    r = pack_weights(np.array([[0, 9, 0, -7, 4, 0]]), "nm", nm=(2, 4))
    assert r.indices.tolist() == [[[1, 3], [0, 1]]] and r.values.tolist() == [[[9, -7], [4, 0]]]
    with pytest.raises(AttributeError):
        r.row_ptr  # noqa: B018


# ----------------------------------------------------------------------------------------------
# Independent decoder (Python loops + struct, straight from the spec text)

def ref_decode(img: bytes) -> np.ndarray:
    magic, code, pa, pb, _, rows, cols, sa, sb, sc, total = struct.unpack_from("<I4B6I", img)
    assert magic == 0x574D5053 and total == len(img)
    W = np.zeros((rows, cols), dtype=np.int64)
    if code == 0:
        for r in range(rows):
            for k in range(cols):
                W[r, k] = struct.unpack_from("<b", img, sa + r * cols + k)[0]
    elif code == 1:
        G, ng = pa, -(-cols // pa)
        ptr = struct.unpack_from(f"<{rows + 1}I", img, sa)
        for r in range(rows):
            v = ptr[r]
            for g in range(ng):
                mask = int.from_bytes(img[sb + (r * ng + g) * (G // 8):][:G // 8], "little")
                for i in range(G):
                    if mask >> i & 1:
                        W[r, g * G + i] = struct.unpack_from("<b", img, sc + v)[0]
                        v += 1
            assert v == ptr[r + 1]
    elif code == 2:
        B, nbr = pa, -(-rows // pa)
        ptr = struct.unpack_from(f"<{nbr + 1}I", img, sa)
        for br in range(nbr):
            for j in range(ptr[br], ptr[br + 1]):
                bc = struct.unpack_from("<H", img, sb + 2 * j)[0]
                for i in range(B * B):
                    r, c = br * B + i // B, bc * B + i % B
                    v = struct.unpack_from("<b", img, sc + j * B * B + i)[0]
                    if r < rows and c < cols:
                        W[r, c] = v
                    else:
                        assert v == 0
    else:
        N, M, ng = pa, pb, -(-cols // pb)
        for r in range(rows):
            for g in range(ng):
                for s in range(N):
                    j = (r * ng + g) * N + s
                    v = struct.unpack_from("<b", img, sa + j)[0]
                    c = g * M + img[sb + j]
                    if c < cols:
                        W[r, c] += v
                    else:
                        assert v == 0
    return W


FORMATS = [("dense", {}), ("bitmap", {"group_size": 8}), ("bitmap", {"group_size": 16}),
           ("bitmap", {"group_size": 32}), ("block", {"block_size": 2}),
           ("block", {"block_size": 4}), ("block", {"block_size": 8}),
           ("block", {"block_size": 16}), ("nm", {"nm": (1, 2)}), ("nm", {"nm": (2, 4)}),
           ("nm", {"nm": (1, 8)}), ("nm", {"nm": (3, 8)}), ("nm", {"nm": (4, 16)}),
           ("nm", {"nm": (1, 32)}), ("nm", {"nm": (4, 4)})]


def make_w(seed, rows, cols, density, fmt, kw):
    rng = np.random.default_rng(seed)
    W = rand_int8(rng, (rows, cols), density, zero_rows=True)
    if fmt == "nm":
        W = fit_nm(rng, W, *kw["nm"])
    return W


@hsettings(200)
@given(i=st.integers(0, len(FORMATS) - 1), rows=st.integers(1, 20), cols=st.integers(1, 70),
       density=st.sampled_from([0.0, 0.05, 0.3, 0.7, 1.0]), seed=st.integers(0, 2**32 - 1))
def test_round_trip_against_reference_decoder(i, rows, cols, density, seed):
    fmt, kw = FORMATS[i]
    W = make_w(seed, rows, cols, density, fmt, kw)
    p = pack_weights(W, fmt, **kw)
    img = p.image.tobytes()
    assert np.array_equal(ref_decode(img), W), show(f"ref_decode {fmt} {kw}", W, ref_decode(img))
    assert np.array_equal(unpack_weights(img), W), show(f"unpack {fmt} {kw}", W,
                                                        unpack_weights(img))
    q = parse_weights(img)
    assert (q.fmt, q.shape, q.nnz, q.stored, q.nbytes) == (fmt, W.shape, np.count_nonzero(W),
                                                           p.stored, len(img))
    assert len(img) % 32 == 0 and p.sec_a == 32 and p.sec_a <= p.sec_b <= p.sec_c <= len(img)
    assert pack_weights(q.unpack(), fmt, **kw).image.tobytes() == img
    assert np.array_equal(unpack_weights(p.image.view("<u4")), W)  # memory words work too
    nnzb = p.stored if fmt == "block" else 0
    assert packed_size(fmt, W.shape, nnz=p.nnz, nnz_blocks=nnzb, **kw) == p.nbytes


@pytest.mark.parametrize("fmt, kw", FORMATS, ids=lambda v: str(v))
def test_round_trip_many(fmt, kw, rng, seed):
    for _ in range(40):
        rows, cols = int(rng.integers(1, 40)), int(rng.integers(1, 100))
        W = make_w(int(rng.integers(2**32)), rows, cols, float(rng.random()), fmt, kw)
        got = unpack_weights(pack_weights(W, fmt, **kw).image)
        assert np.array_equal(got, W), show(f"{fmt} {kw} {W.shape}", W, got, seed)


def test_block_canonical_content():
    W = np.zeros((9, 9), dtype=np.int8)
    W[8, 8] = -128
    p = pack_weights(W, "block", block_size=8)
    assert p.blk_ptr.tolist() == [0, 0, 1] and p.blk_col.tolist() == [1]
    assert p.values[0, 0, 0] == -128 and np.count_nonzero(p.values) == 1
    assert pack_weights(np.zeros((4, 4), np.int8), "bitmap").nbytes == 32 + 32 + 32  # C empty


# ----------------------------------------------------------------------------------------------
# pack_weights rejects what does not fit

def test_pack_rejects():
    with pytest.raises(ValueError, match=r"row 1 group 1 \(columns 4\.\.7\) has 3 non-zeros"):
        pack_weights(np.array([[1, 1, 0, 0, 0, 0, 0, 0], [0, 0, 0, 0, 1, 1, 1, 0]]), "nm")
    with pytest.raises(ValueError, match="group_size must be one of"):
        pack_weights(np.ones((2, 2), np.int8), "bitmap", group_size=12)
    with pytest.raises(ValueError, match="block_size must be one of"):
        pack_weights(np.ones((2, 2), np.int8), "block", block_size=3)
    with pytest.raises(ValueError, match="nm M must be a power of two"):
        pack_weights(np.ones((2, 2), np.int8), "nm", nm=(1, 6))
    with pytest.raises(ValueError, match="nm N must be between 1 and M=4, not 5"):
        pack_weights(np.ones((2, 2), np.int8), "nm", nm=(5, 4))
    with pytest.raises(ValueError, match="fmt must be one of"):
        pack_weights(np.ones((2, 2), np.int8), "csr")
    with pytest.raises(TypeError, match="W must be an integer array, not dtype float64"):
        pack_weights(np.ones((2, 2)), "dense")
    with pytest.raises(ValueError, match=r"int8 \(-128..127\), not range \[-129, 1\]"):
        pack_weights(np.array([[1, -129]]), "dense")
    with pytest.raises(ValueError, match="W must be 2-D"):
        pack_weights(np.ones(3, np.int8), "dense")
    with pytest.raises(ValueError, match="not shape"):
        pack_weights(np.ones((0, 3), np.int8), "dense")
    with pytest.raises(ValueError, match="65536 block columns"):
        pack_weights(np.zeros((1, 2 * 65536 + 1), np.int8), "block", block_size=2)


# ----------------------------------------------------------------------------------------------
# Every FormatError code, by corrupting valid images

def put(img: bytes, off: int, fmt: str, *vals) -> bytes:
    b = bytearray(img)
    struct.pack_into(fmt, b, off, *vals)
    return bytes(b)


BM = image_of(HAND[1][3], HAND[1][4], HAND[1][5])   # bitmap G=8 3x10
BL = image_of(HAND[3][3], HAND[3][4], HAND[3][5])   # block B=2 3x5
NM = image_of(HAND[4][3], HAND[4][4], HAND[4][5])   # nm 2:4 2x6
NM3 = image_of(HAND[5][3], HAND[5][4], HAND[5][5])  # nm 3:4 1x5
DN = image_of(HAND[0][3], HAND[0][4], HAND[0][5])   # dense 2x3

CORRUPT = [
    ("short", BM[:16], C.BAD_SIZE, "shorter than the 32-byte header"),
    ("magic", put(BM, 0, "<I", 0x57504D53), C.BAD_MAGIC, "must be 0x574D5053, not 0x57504D53"),
    ("format", put(BM, 4, "<B", 4), C.BAD_FORMAT, "not 4"),
    ("reserved", put(BM, 7, "<B", 1), C.BAD_PARAM, "reserved byte at offset 7"),
    ("bitmap G", put(BM, 5, "<B", 12), C.BAD_PARAM, "group_size"),
    ("bitmap param_b", put(BM, 6, "<B", 1), C.BAD_PARAM, "must be (8, 0), not (8, 1)"),
    ("block B", put(BL, 5, "<B", 3), C.BAD_PARAM, "block_size"),
    ("nm M", put(NM, 6, "<B", 6), C.BAD_PARAM, "power of two"),
    ("nm N>M", put(NM, 5, "<B", 5), C.BAD_PARAM, "N must be between 1 and M=4"),
    ("nm N=0", put(NM, 5, "<B", 0), C.BAD_PARAM, "not 0"),
    ("dense param", put(DN, 5, "<B", 1), C.BAD_PARAM, "must be (0, 0), not (1, 0)"),
    ("rows 0", put(BM, 8, "<I", 0), C.BAD_SHAPE, "not (0, 10)"),
    ("cols 0", put(DN, 12, "<I", 0), C.BAD_SHAPE, "not (2, 0)"),
    ("block cols", put(BL, 12, "<I", 2**32 - 1), C.BAD_SHAPE, "at most 65536"),
    ("total", put(BM, 28, "<I", 96), C.BAD_SIZE, "equal the image length 128"),
    ("length", BM + bytes(32), C.BAD_SIZE, "= 128"),
    ("total %32", put(BM, 28, "<I", 100)[:100], C.BAD_SIZE, "multiple of 32"),
    ("sec_a align", put(BM, 16, "<I", 48), C.BAD_SECTION, "sec_a = 48"),
    ("sec_a 0", put(BM, 16, "<I", 0), C.BAD_SECTION, "sec_a = 0"),
    ("sec_c > total", put(BM, 24, "<I", 160), C.BAD_SECTION, "sec_c = 160"),
    ("order", put(BM, 20, "<I", 128), C.BAD_SECTION, "must be in order"),
    ("nm sec_c", put(NM, 24, "<I", 64), C.BAD_SECTION, "unused sec_c"),
    ("dense too small", put(DN, 8, "<I", 20), C.BAD_SECTION, "needs at least 60 bytes"),
    ("bitmap masks overlap", put(BM, 24, "<I", 64), C.BAD_SECTION,
     "section B of bitmap needs at least 6 bytes, but has 0"),
    ("row_ptr[0]", put(BM, 32, "<I", 1), C.BAD_PTR, "row_ptr[0] must be 0, not 1"),
    ("row_ptr dec", put(BM, 40, "<I", 1), C.BAD_PTR, "row_ptr[2] = 1 is less than row_ptr[1]"),
    ("row_ptr cap", put(put(BM, 44, "<I", 33), 40, "<I", 2), C.BAD_PTR, "at most 32"),
    ("blk_ptr dec", put(BL, 36, "<I", 4), C.BAD_PTR, "blk_ptr[2] = 3 is less than"),
    ("blk_ptr cap", put(BL, 40, "<I", 9), C.BAD_PTR, "blk_ptr[2] = 9"),
    ("mask count", put(BM, 66, "<B", 0x10), C.BAD_MASK_COUNT,
     "popcount of row 1 masks is 1, expected row_ptr[2] - row_ptr[1] = 0"),
    ("mask pad", put(BM, 65, "<B", 0x05), C.BAD_PAD, "row 0 column 10"),
    ("blk_col range", put(BL, 66, "<H", 3), C.BAD_INDEX, "blk_col[1] = 3 must be less than"),
    ("blk_col order", put(BL, 66, "<H", 0), C.BAD_INDEX, "blk_col[1] = 0 must be greater"),
    ("block pad", put(BL, 96 + 4 + 1, "<b", 9), C.BAD_PAD, "block 1"),
    ("block pad row", put(BL, 96 + 8 + 2, "<b", 9), C.BAD_PAD, "element (1, 0)"),
    ("nm idx range", put(NM, 65, "<B", 4), C.BAD_INDEX, "is 4, must be less than M=4"),
    ("nm idx order", put(NM, 64, "<B", 3), C.BAD_INDEX, "strictly increasing, not [3, 3]"),
    ("nm pad", put(NM3, 36, "<b", 1), C.BAD_PAD, "points past K=5 (column 5)"),
]


@pytest.mark.parametrize("name, img, code, text", CORRUPT, ids=[c[0] for c in CORRUPT])
def test_format_error(name, img, code, text):
    with pytest.raises(FormatError) as e:
        unpack_weights(img)
    assert e.value.code == code, f"{name}: expected {code!r}, actual {e.value.code!r}: {e.value}"
    assert text in str(e.value), f"{name}: {text!r} not in {str(e.value)!r}"
    assert str(e.value).startswith(code.name)
    again = pickle.loads(pickle.dumps(e.value))  # crosses pytest-xdist / multiprocessing
    assert again.code == code and str(again) == str(e.value)


def test_every_code_is_triggered():
    seen = {c[2] for c in CORRUPT}
    assert seen == set(C) - {C.OK}, f"untested codes: {set(C) - {C.OK} - seen}"


@hsettings(300)
@given(i=st.integers(0, len(FORMATS) - 1), seed=st.integers(0, 2**32 - 1),
       flips=st.integers(1, 4))
def test_fuzzed_images_fail_cleanly(i, seed, flips):
    """Random byte corruption: unpack either raises FormatError or decodes consistently."""
    fmt, kw = FORMATS[i]
    rng = np.random.default_rng(seed)
    W = make_w(seed, int(rng.integers(1, 9)), int(rng.integers(1, 40)), 0.4, fmt, kw)
    img = bytearray(pack_weights(W, fmt, **kw).image.tobytes())
    for _ in range(flips):
        pos = int(rng.integers(len(img))) if rng.random() < 0.7 else int(rng.integers(32))
        img[pos] = int(rng.integers(256))
    try:
        got = unpack_weights(bytes(img))
    except FormatError as e:
        assert e.code != C.OK
        return
    assert np.array_equal(got, ref_decode(bytes(img)))
