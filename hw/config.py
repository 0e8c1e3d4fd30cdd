"""Every build parameter of the accelerator, validated once (docs/spec.md section 5).

`AcceleratorConfig` is the single source of truth for hardware parameters: the generator, the
golden cycle model, the testbenches and the flow all read it.  Cross-block checks live here and
nowhere else.  Errors follow the Amaranth idiom ``"<name> must be <requirement>, not <value!r>"``
and always name the parameter and its allowed range.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass, field, fields
from importlib import resources
from pathlib import Path
from typing import Any

from sparsemac.golden.formats import FORMAT_CODES

__all__ = ["AcceleratorConfig", "FORMATS", "POOL_OPS", "ConfigError", "load_config", "PRESETS_DIR"]

FORMATS = tuple(FORMAT_CODES)  # format names in code order (golden.formats.FormatCode)
PRESETS_DIR = Path(str(resources.files("sparsemac.configs")))


class ConfigError(ValueError):
    """A configuration file or override is malformed (bad YAML, unknown key, bad ``key=value``)."""


#: the pooling operations a build with ``pool_enabled`` runs
POOL_OPS = ("maxpool2d", "avgpool2d", "global_avgpool")


def _pow2(x: int) -> bool:
    return x > 0 and (x & (x - 1)) == 0


# name -> (minimum, maximum, must be a power of two), checked in this order; grouped by the
# part of the accelerator the parameters size
_INT_RANGES: dict[str, tuple[int, int, bool]] = {
    # compute array
    "rows": (1, 64, False), "cols": (1, 64, False), "tiles": (1, 8, False),
    "data_width": (8, 8, False), "acc_width": (20, 48, False),
    # weight formats
    "group_size": (8, 32, True), "block_size": (2, 16, True), "nm_max_m": (2, 32, True),
    # AXI4 master and DMA
    "axi_data_width": (32, 256, True), "axi_addr_width": (32, 64, False),
    "axi_id_width": (1, 8, False), "axi_max_burst": (1, 256, True),
    "max_outstanding": (1, 16, False),
    # tile buffers (entries)
    "weight_buf_depth": (64, 1 << 20, True), "act_buf_depth": (16, 1 << 20, True),
    "out_buf_depth": (16, 1 << 20, True), "result_buf_depth": (0, 1024, False),
    # ring
    "ring_payload_width": (16, 512, True), "ring_fifo_depth": (2, 64, False),
    "ring_inject_yield": (0, 63, False),
    # output pipeline
    "out_lanes": (1, 64, False), "lut_depth": (256, 256, False), "pwl_segments": (4, 256, True),
    # hub, timing
    "desc_queue_depth": (1, 64, False), "mul_pipeline": (0, 3, False),
    "watchdog_cycles": (256, 1 << 30, False), "target_mhz": (1, 1000, False),
}


def _index_width(depth: str, what: str) -> property:
    """A derived width: bits of an index into ``depth`` entries, ``(depth - 1).bit_length()``
    (the one rule for the buffer address and table index widths below)."""
    def width(self) -> int:
        return (getattr(self, depth) - 1).bit_length()
    width.__doc__ = f"Bits of a {what} (``({depth} - 1).bit_length()``)."
    return property(width)


@dataclass(frozen=True)
class AcceleratorConfig:
    """Validated, frozen set of accelerator build parameters.

    Parameters
    ----------
    rows, cols : int
        MAC array shape per tile (1..64 each).  ``rows`` output channels are computed in
        parallel, each against ``cols`` output pixels / matrix columns.
    tiles : int
        Compute tiles on the ring (1..8).
    data_width : int
        Weight / activation width in bits.  Only 8 (signed int8) is supported.
    acc_width : int
        Accumulator width in bits (20..48), two's-complement wrap.
    group_size : int
        ``G`` of the ``bitmap`` format: mask bits per group (8, 16 or 32).
    block_size : int
        ``B`` of the ``block`` format (2, 4, 8 or 16).
    nm_max_m : int
        Largest ``M`` of an ``N:M`` pattern the hardware accepts (2..32, power of two).
    formats : tuple of str
        Sparse weight formats built into the front end; a subset of ``FORMATS`` that contains
        ``"dense"``.
    axi_data_width, axi_addr_width, axi_id_width : int
        AXI4 master bus widths.
    axi_max_burst : int
        Longest AXI burst in beats (1..256, power of two).
    max_outstanding : int
        Outstanding AXI read bursts (1..16).
    weight_buf_depth, act_buf_depth, out_buf_depth : int
        Tile-local buffer depths in entries (power of two).  A weight entry is one compressed
        stream word, an activation entry is one ``K`` row of ``cols`` int8 values, an output
        entry is one row of ``cols`` results.
    result_buf_depth : int
        Results (a lane's ``cols`` accumulators, row and column group) a tile node holds
        between its tile and its output pipeline (0..1024; 0: none, the tile's two-entry
        lane FIFOs only), so the lanes keep computing while results cannot leave: a
        LATE_TABLES layer waiting for its records, a write-back bound layer.
    ring_payload_width : int
        Payload bits of a ring flit (16..512, power of two).
    ring_fifo_depth : int
        Entries of each router input FIFO per virtual channel (2..64).
    ring_inject_yield : int
        Forwarded ACTS flits a router's waiting injection lets go first in a row (0..63;
        0: plain round-robin).  A DMA stream of activations passing a tile is then not cut
        by that tile's results, which wait in its result buffer (docs/ring.md section 4).
    lut_enabled : bool
        Build the activation LUT engine.
    pool_enabled : bool
        Build max / average / global average pooling in the tiles (descriptor opcodes 2..4,
        docs/spec.md section 8.2; docs/accelerator.md "Pooling").
    out_lanes : int
        Values per cycle through requantization and the activation LUT (1..64).
    lut_depth : int
        Activation table entries (256: the int8 input domain).
    pwl_segments : int
        Segments of the interpolated (int16) activation mode (4..256, power of two).
    desc_queue_depth : int
        Descriptors prefetched by the top-level sequencer (1..64).
    mul_pipeline : int
        Register stages after each multiplier (0..3); 2 maps onto a pipelined DSP.
    watchdog_cycles : int
        Cycles without bus progress before a transfer is declared stuck (256..2**30).
    target_mhz : int
        Clock target used by the flow's timing report.
    """

    rows: int = 4
    cols: int = 4
    tiles: int = 2
    data_width: int = 8
    acc_width: int = 32
    group_size: int = 16
    block_size: int = 8
    nm_max_m: int = 32
    formats: tuple[str, ...] = FORMATS
    axi_data_width: int = 64
    axi_addr_width: int = 32
    axi_id_width: int = 4
    axi_max_burst: int = 16
    max_outstanding: int = 4
    weight_buf_depth: int = 4096
    act_buf_depth: int = 1024
    out_buf_depth: int = 256
    result_buf_depth: int = 32
    ring_payload_width: int = 64
    ring_fifo_depth: int = 4
    ring_inject_yield: int = 32
    lut_enabled: bool = True
    pool_enabled: bool = True
    out_lanes: int = 4
    lut_depth: int = 256
    pwl_segments: int = 32
    desc_queue_depth: int = 4
    mul_pipeline: int = 2
    watchdog_cycles: int = 65536
    target_mhz: int = 150
    name: str = field(default="custom", compare=False)

    # -- validation ---------------------------------------------------------------------------
    def __post_init__(self) -> None:
        for fname, (lo, hi, pow2) in _INT_RANGES.items():
            value = getattr(self, fname)
            if isinstance(value, bool) or not isinstance(value, int):
                raise TypeError(f"{fname} must be an integer, not {value!r}")
            if not lo <= value <= hi or (pow2 and not _pow2(value)):
                kind = "a power of two between" if pow2 else "between"
                raise ValueError(f"{fname} must be {kind} {lo} and {hi}, not {value!r}")
        for flag in ("lut_enabled", "pool_enabled"):
            if not isinstance(getattr(self, flag), bool):
                raise TypeError(f"{flag} must be a bool, not {getattr(self, flag)!r}")
        if not isinstance(self.name, str):
            raise TypeError(f"name must be a string, not {self.name!r}")
        fmts = self.formats
        if isinstance(fmts, str) or not isinstance(fmts, (tuple, list)):
            raise TypeError(f"formats must be a list of format names, not {fmts!r}")
        fmts = tuple(fmts)
        for f in fmts:
            if f not in FORMATS:
                raise ValueError(f"formats must only contain {', '.join(FORMATS)}, not {f!r}")
        if len(set(fmts)) != len(fmts):
            raise ValueError(f"formats must not repeat a format, not {list(fmts)!r}")
        if "dense" not in fmts:
            raise ValueError(f"formats must include 'dense' (the baseline), not {list(fmts)!r}")
        # Canonical order, so equal configs compare and hash equal.
        object.__setattr__(self, "formats", tuple(f for f in FORMATS if f in fmts))
        # -- cross-parameter relations ------------------------------------------------------
        if self.out_lanes > self.cols:
            raise ValueError(
                f"out_lanes must be between 1 and cols ({self.cols}), not {self.out_lanes!r}"
            )
        if self.cols % self.out_lanes:
            raise ValueError(
                f"out_lanes must divide cols ({self.cols}), not {self.out_lanes!r}"
            )
        if self.acc_width < self.product_width + 4:
            raise ValueError(
                f"acc_width must be at least {self.product_width + 4} (product width + 4 guard "
                f"bits), not {self.acc_width!r}"
            )
        if self.ring_payload_width < self.axi_data_width:
            raise ValueError(
                f"ring_payload_width must be at least axi_data_width ({self.axi_data_width}), "
                f"not {self.ring_payload_width!r}"
            )

    # -- derived values -----------------------------------------------------------------------
    @property
    def ops(self) -> tuple[str, ...]:
        """The descriptor operations this build runs (`golden.descriptors.Opcode` names in lower
        case): matmul and conv2d, and the pools when ``pool_enabled``."""
        return ("matmul", "conv2d") + (POOL_OPS if self.pool_enabled else ())

    @property
    def product_width(self) -> int:
        """Bits of one signed data x data product."""
        return 2 * self.data_width

    @property
    def macs_per_tile(self) -> int:
        return self.rows * self.cols

    @property
    def macs(self) -> int:
        """MAC units in the whole accelerator."""
        return self.rows * self.cols * self.tiles

    @property
    def axi_bytes(self) -> int:
        """Bytes per AXI data beat."""
        return self.axi_data_width // 8

    @property
    def tile_id_width(self) -> int:
        """Bits of a ring node address (at least 1)."""
        return max(1, math.ceil(math.log2(self.tiles + 1)))

    @property
    def group_mask_bytes(self) -> int:
        """Bytes of one bitmap-format group mask."""
        return self.group_size // 8

    @property
    def nm_index_width(self) -> int:
        """Bits of an in-group index of the ``nm`` format."""
        return max(1, (self.nm_max_m - 1).bit_length())

    @property
    def act_row_width(self) -> int:
        """Bits of one activation buffer entry (``cols`` int8 values)."""
        return self.cols * self.data_width

    weight_addr_width = _index_width("weight_buf_depth", "weight buffer address")
    act_addr_width = _index_width("act_buf_depth", "activation buffer address")
    out_addr_width = _index_width("out_buf_depth", "output buffer address")
    pwl_index_width = _index_width("pwl_segments", "interpolated-activation segment index")

    # -- conversions --------------------------------------------------------------------------
    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for f in fields(self):
            v = getattr(self, f.name)
            out[f.name] = list(v) if isinstance(v, tuple) else v
        return out

    @classmethod
    def from_dict(cls, data: dict[str, Any], *, source: str = "config") -> AcceleratorConfig:
        if not isinstance(data, dict):
            raise ConfigError(f"{source}: a config must be a mapping of parameters, not {data!r}")
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise ConfigError(
                f"{source}: unknown parameter {unknown[0]!r}; known parameters: "
                + ", ".join(sorted(known))
            )
        kw = dict(data)
        if "formats" in kw and isinstance(kw["formats"], list):
            kw["formats"] = tuple(kw["formats"])
        try:
            return cls(**kw)
        except ConfigError:
            raise
        except (TypeError, ValueError) as exc:     # a parameter's own check: name the file
            line = getattr(data, "lines", {}).get(str(exc).split(" ", 1)[0])
            raise ConfigError(f"{source}:{line}: {exc}" if line else f"{source}: {exc}") from None

    def to_yaml(self) -> str:
        import yaml

        return yaml.safe_dump(self.to_dict(), sort_keys=False)

    @classmethod
    def from_yaml(cls, path: str | Path) -> AcceleratorConfig:
        from sparsemac.yamlfile import load_file

        path = Path(path)
        data = load_file(path, "config file", ConfigError)
        if data is None:
            data = {}
        if isinstance(data, dict):
            data.setdefault("name", path.stem)
        return cls.from_dict(data, source=str(path))

    @classmethod
    def preset(cls, name: str) -> AcceleratorConfig:
        """Load a named preset from ``configs/<name>.yaml`` (``tiny``, ``default``, ``large``)."""
        path = PRESETS_DIR / f"{name}.yaml"
        if not path.is_file():
            names = sorted(p.stem for p in PRESETS_DIR.glob("*.yaml"))
            raise ConfigError(f"preset must be one of {', '.join(names)}, not {name!r}")
        return cls.from_yaml(path)

    def replace(self, **changes: Any) -> AcceleratorConfig:
        return dataclasses.replace(self, **changes)

    @staticmethod
    def require(value, name: str = "cfg") -> AcceleratorConfig:
        """``value`` if it is an AcceleratorConfig, else ``TypeError`` naming parameter
        ``name`` (what every block's constructor checks first)."""
        if not isinstance(value, AcceleratorConfig):
            raise TypeError(f"{name} must be an AcceleratorConfig, not {value!r}")
        return value

    def with_overrides(self, overrides: list[str] | tuple[str, ...]) -> AcceleratorConfig:
        """Apply ``key=value`` strings (the CLI's ``--set``); values are parsed as YAML scalars."""
        import yaml

        data = self.to_dict()
        for item in overrides:
            if "=" not in item:
                raise ConfigError(f"--set must be key=value, not {item!r}")
            key, _, raw = item.partition("=")
            key = key.strip()
            try:
                data[key] = yaml.safe_load(raw)
            except yaml.YAMLError:
                raise ConfigError(f"--set {key}: cannot parse value {raw!r}") from None
            if key not in {f.name for f in fields(self)}:
                raise ConfigError(
                    f"--set: unknown parameter {key!r}; known parameters: "
                    + ", ".join(sorted(f.name for f in fields(self)))
                )
        return AcceleratorConfig.from_dict(data, source="--set")


def load_config(path: str | Path | None = None, overrides: list[str] | None = None
                ) -> AcceleratorConfig:
    """Load a config file (or the ``default`` preset) and apply ``key=value`` overrides."""
    cfg = AcceleratorConfig.from_yaml(path) if path else AcceleratorConfig.preset("default")
    return cfg.with_overrides(overrides or [])
