"""Functional coverage bins of the accelerator regression (docs/verification.md, "Coverage").

A small, dependency-free cover model in the spirit of cocotb-coverage's ``CoverPoint`` /
``CoverCross``: :class:`Axis` turns a sampled value into a bin label, :class:`CoverModel`
counts the hits of every cross whose axes a sample names, keeps per-bin waivers, serialises
to JSON and merges runs.

The accelerator model (:func:`accelerator_model`) has six axes, crossed where the combination
means something (a full 6-way product would mostly hold impossible bins: a job stops at its
first error, so an error class has no sparsity):

============  =============================================================================
axis          bins
============  =============================================================================
``fmt``       the weight formats of `sparsemac.golden.formats` (dense, bitmap, block, nm)
``sparsity``  zero fraction of the layer's weight matrix, measured from its weight images:
              ``0`` (< 5 %: no pruning, natural zeros only), ``<50``, ``50-75``, ``75-90``,
              ``>=90`` (percent)
``op``        the operations the hardware builds (`sparsemac.golden.descriptors.HW_OPS`:
              matmul, conv2d)
``stall``     the AXI pause probability of the job: ``0``, ``low`` (< 0.25), ``high``
``error``     every `sparsemac.golden.descriptors.ErrorCode` except OK (the weight-image codes
              1..10 are `FormatErrorCode`'s)
``tiles``     ``1`` (no ring forwarding), ``2`` (one hop), ``3+`` (multi-hop forwarding)
``pool``      the pools on the tiles (`sparsemac.hw.config.POOL_OPS`: maxpool2d, avgpool2d,
              global_avgpool): layers without weights, so no format or sparsity
============  =============================================================================

Crosses: ``layer`` = fmt x sparsity x op, ``stall`` = fmt x op x stall, ``tiles`` =
fmt x op x tiles, ``errors`` = error x tiles, ``pools`` = pool x tiles.  A matmul / conv2d
layer that completed samples the first three, a pool layer ``pools``, a job that stopped
with an error samples ``errors``.

The bench records through :class:`BinsRecorder`, which writes a JSON file of its own into the
coverage folder when ``SPARSEMAC_COVERAGE_DIR`` is set (``run_cocotb`` sets it on coverage
runs) and does nothing otherwise.
"""

from __future__ import annotations

import fnmatch
import json
import os
import uuid
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from itertools import product
from pathlib import Path

__all__ = ["Axis", "CoverModel", "accelerator_model", "weight_sparsity", "stall_level",
           "tile_bin", "sparsity_bin", "sample_job", "BinsRecorder", "SPARSITY_BINS"]


@dataclass(frozen=True)
class Axis:
    """One cover point: ``bins`` (labels, in report order) and ``classify`` (value -> label,
    or None for a value outside every bin).  The default ``classify`` is ``str``."""

    name: str
    bins: tuple[str, ...]
    classify: Callable[[object], str | None] = str

    def label(self, value) -> str | None:
        lab = self.classify(value)
        return lab if lab in self.bins else None


@dataclass
class CoverModel:
    """Axes, crosses of them, hit counts and waivers.

    Parameters
    ----------
    axes : sequence of Axis
    crosses : mapping of cross name -> tuple of axis names
        A single-axis cross is a plain cover point.
    waivers : mapping of (cross name, pattern tuple) -> reason
        A pattern element is an ``fnmatch`` glob on the bin label (``"*"`` for any); a matching
        bin is waived (left out of the total) when not hit, and listed with its reason.
    """

    axes: Sequence[Axis]
    crosses: Mapping[str, tuple[str, ...]]
    waivers: Mapping[tuple[str, tuple[str, ...]], str] = field(default_factory=dict)
    hits: dict[str, dict[tuple[str, ...], int]] = field(default_factory=dict)

    def __post_init__(self):
        self._axes = {a.name: a for a in self.axes}
        for name, names in self.crosses.items():
            unknown = [n for n in names if n not in self._axes]
            if unknown:
                raise ValueError(f"cross {name!r} must name known axes, not {unknown!r}")
            self.hits.setdefault(name, {})

    def bins(self, cross: str) -> list[tuple[str, ...]]:
        """Every bin of ``cross``, in axis order."""
        return list(product(*(self._axes[n].bins for n in self.crosses[cross])))

    def sample(self, **values) -> list[str]:
        """Count one hit in every cross whose axes are all in ``values``; returns those
        crosses.  A value outside its axis' bins raises ``ValueError``."""
        labels = {}
        for name, value in values.items():
            if name not in self._axes:
                raise ValueError(f"sample must name known axes, not {name!r}")
            lab = self._axes[name].label(value)
            if lab is None:
                raise ValueError(f"{name} value must fall in a bin of {self._axes[name].bins}, "
                                 f"not {value!r}")
            labels[name] = lab
        hit = []
        for cross, names in self.crosses.items():
            if all(n in labels for n in names):
                key = tuple(labels[n] for n in names)
                self.hits[cross][key] = self.hits[cross].get(key, 0) + 1
                hit.append(cross)
        return hit

    def waiver(self, cross: str, key: tuple[str, ...]) -> str | None:
        for (wc, pattern), reason in self.waivers.items():
            if wc == cross and len(pattern) == len(key) and all(
                    fnmatch.fnmatchcase(k, p) for k, p in zip(key, pattern)):
                return reason
        return None

    def summary(self) -> dict[str, dict]:
        """Per cross: ``hit``, ``total`` (waived misses left out), ``waived``, ``percent``,
        ``uncovered`` (bins) and ``waived_bins`` ((bin, reason) pairs)."""
        out = {}
        for cross in self.crosses:
            hit, uncovered, waived = 0, [], []
            for key in self.bins(cross):
                if self.hits[cross].get(key, 0):
                    hit += 1
                elif (reason := self.waiver(cross, key)) is not None:
                    waived.append((key, reason))
                else:
                    uncovered.append(key)
            total = hit + len(uncovered)
            out[cross] = {"axes": list(self.crosses[cross]), "hit": hit, "total": total,
                          "waived": len(waived),
                          "percent": 100.0 * hit / total if total else 100.0,
                          "uncovered": [list(k) for k in uncovered],
                          "waived_bins": [[list(k), r] for k, r in waived]}
        return out

    def to_json(self) -> dict:
        return {"crosses": {c: list(n) for c, n in self.crosses.items()},
                "hits": {c: [[list(k), v] for k, v in sorted(h.items())]
                         for c, h in self.hits.items()}}

    def merge(self, data: Mapping) -> None:
        """Add the hits of a :meth:`to_json` dict (crosses this model lacks are ignored)."""
        for cross, rows in data.get("hits", {}).items():
            if cross in self.hits:
                for key, n in rows:
                    key = tuple(key)
                    self.hits[cross][key] = self.hits[cross].get(key, 0) + int(n)


# ----------------------------------------------------------------- the accelerator model

#: (label, low, high): measured weight sparsity in [low, high)
SPARSITY_BINS = (("0", 0.0, 0.05), ("<50", 0.05, 0.5), ("50-75", 0.5, 0.75),
                 ("75-90", 0.75, 0.9), (">=90", 0.9, 1.01))


def sparsity_bin(s: float) -> str | None:
    for label, lo, hi in SPARSITY_BINS:
        if lo <= s < hi:
            return label
    return None


def stall_level(p: float) -> str:
    """``0``, ``low`` (0 < p < 0.25) or ``high``."""
    return "0" if p <= 0 else "low" if p < 0.25 else "high"


def tile_bin(tiles: int) -> str:
    return "1" if tiles == 1 else "2" if tiles == 2 else "3+"


def _is(label_of):
    return lambda v: v if isinstance(v, str) else label_of(v)


def accelerator_model(waivers: Mapping | None = None) -> CoverModel:
    """The accelerator's cover model (see the module doc); ``waivers`` default to
    :data:`ACCEL_WAIVERS`."""
    from sparsemac.golden.descriptors import HW_OPS, ErrorCode
    from sparsemac.golden.formats import FORMAT_CODES
    from sparsemac.hw.config import POOL_OPS

    axes = [
        Axis("fmt", tuple(FORMAT_CODES)),
        Axis("sparsity", tuple(b[0] for b in SPARSITY_BINS), _is(sparsity_bin)),
        Axis("op", HW_OPS),
        Axis("stall", ("0", "low", "high"), _is(stall_level)),
        Axis("error", tuple(c.name for c in ErrorCode if c != ErrorCode.OK),
             lambda v: v if isinstance(v, str) else ErrorCode(int(v)).name),
        Axis("tiles", ("1", "2", "3+"), _is(tile_bin)),
        Axis("pool", POOL_OPS),
    ]
    crosses = {"layer": ("fmt", "sparsity", "op"), "stall": ("fmt", "op", "stall"),
               "tiles": ("fmt", "op", "tiles"), "errors": ("error", "tiles"),
               "pools": ("pool", "tiles")}
    return CoverModel(axes, crosses, dict(ACCEL_WAIVERS if waivers is None else waivers))


#: Bins that cannot be hit, with the reason (docs/verification.md, "Coverage").
ACCEL_WAIVERS: dict[tuple[str, tuple[str, ...]], str] = {
    ("errors", ("BAD_LENGTH", "*")):
        "not reachable through descriptors (believed, not proven): the descriptor checker "
        "refuses zero shapes (BAD_SHAPE) before the sequencer forms DMA commands from them; "
        "the DMA engine's own zero-length check is covered by tests/hw/test_dma_reader.py "
        "and test_dma_writer.py",
}


def weight_sparsity(image: bytes | bytearray, offset: int, rows: int) -> float | None:
    """Zero fraction of the weight matrix stored as the images at ``offset`` of ``image``
    (one per tile slice, back to back, until ``rows`` rows; docs/spec.md section 8.1).  None
    when an image does not parse (a test broke it on purpose)."""
    import numpy as np
    from sparsemac.golden.format_check import unpack_weights
    from sparsemac.golden.formats import FormatError

    zeros = size = seen = 0
    off = offset
    try:
        while seen < rows:
            total = int.from_bytes(image[off + 28:off + 32], "little")
            if total < 32:
                return None
            W = unpack_weights(bytes(image[off:off + total]))
            if W.shape[0] == 0:
                return None
            zeros += int(np.count_nonzero(W == 0))
            size += W.size
            seen += W.shape[0]
            off += total
    except (FormatError, ValueError, IndexError):
        return None
    return zeros / size if size else None


def _nominal_sparsity(L: Mapping) -> float:
    if L.get("fmt") == "nm":
        n, m = L.get("nm", (2, 4))
        return 1.0 - n / m
    d = L.get("density")
    return 0.0 if d is None else 1.0 - float(d)


def sample_job(model: CoverModel, job, *, tiles: int, stall: float, code: int = 0,
               index: int | None = None) -> None:
    """Sample the bins of one finished job (`sparsemac.sim.accel_driver.Job`).

    ``code`` is ``STATUS.error_code`` (0: done) and ``index`` the descriptor it stopped at;
    layers before ``index`` (all layers when ``code`` is 0) sample fmt, sparsity, op, stall
    and tiles (a pool layer, without weights: pool and tiles), and a non-zero ``code``
    samples error x tiles."""
    from sparsemac.golden.descriptors import HW_OPS

    done = len(job.layers) if not code else min(index or 0, len(job.layers))
    for L in job.layers[:done]:
        if L["op"] not in HW_OPS:     # a pool (sim.accel_driver.add_pool_layers)
            model.sample(pool=L["op"], tiles=tiles)
            continue
        d = L.get("desc")
        s = None
        if d is not None:
            s = weight_sparsity(job.image, d.weights, d.m)
        if s is None:
            s = _nominal_sparsity(L)
        model.sample(fmt=L["fmt"], op=L["op"], sparsity=s, stall=stall, tiles=tiles)
    if code:
        model.sample(error=code, tiles=tiles)


class BinsRecorder:
    """The bench's handle: ``record(job, ...)`` samples :func:`sample_job` and rewrites this
    run's JSON file (``fcov-<name>-<pid>-<id>.json`` in ``SPARSEMAC_COVERAGE_DIR``) so a crash
    keeps what was recorded.  Without ``SPARSEMAC_COVERAGE_DIR`` it does nothing."""

    def __init__(self, name: str, *, directory: str | os.PathLike | None = None):
        directory = directory or os.environ.get("SPARSEMAC_COVERAGE_DIR")
        self.model = accelerator_model()
        self.path = None
        if directory:
            self.path = Path(directory) / f"fcov-{name}-{os.getpid()}-{uuid.uuid4().hex[:8]}.json"

    @property
    def enabled(self) -> bool:
        return self.path is not None

    def record(self, job, **kw) -> None:
        if not self.enabled:
            return
        sample_job(self.model, job, **kw)
        self.flush()

    def record_error(self, code: int, *, tiles: int) -> None:
        """An error reached without :meth:`record` (a test that drives the run itself)."""
        if not self.enabled:
            return
        self.model.sample(error=code, tiles=tiles)
        self.flush()

    def flush(self) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        tmp = self.path.with_suffix(".tmp")
        tmp.write_text(json.dumps(self.model.to_json()))
        tmp.replace(self.path)


def merge_files(paths: Iterable[str | os.PathLike], model: CoverModel | None = None
                ) -> CoverModel:
    """One model holding the hits of every ``fcov-*.json`` in ``paths``."""
    model = model or accelerator_model()
    for p in paths:
        model.merge(json.loads(Path(p).read_text()))
    return model


__all__ += ["merge_files", "ACCEL_WAIVERS"]
