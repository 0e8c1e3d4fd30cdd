"""Sweep specifications: YAML with line numbers, checked completely before any work starts.

A spec (examples/sweep_*.yaml)::

    name: tiny                    # label of the sweep
    base: {preset: tiny}          # or {config: FILE}; the config every point starts from
    set: {mul_pipeline: 2}        # optional: fixed overrides of the base
    grid:                         # cartesian product of parameter lists ...
      rows: [2, 4]
      cols: [2, 4]
      shape: [{tiles: 1, out_lanes: 2}, {tiles: 2, out_lanes: 4}]   # a mapping value sets
                                  # several parameters together (the key is only a label)
    points:                       # ... and/or an explicit list of parameter sets
      - {rows: 8, cols: 8, out_lanes: 8}
    top: mac_array                # top synthesized for area (default: most complete one)
    synth: {target: generic, device: null, fmax: false}   # or: synth: none
    cycles: auto                  # auto | roofline | tile_model (flow/cycles.py)
    rtl_sample: 4                 # optional: run 4 points (spread evenly) on the tile's RTL
    workloads:
      - {name: fc, op: matmul, M: 64, K: 256, N: 16, format: [dense, bitmap], sparsity: 0.75}
      - {name: c3, op: conv2d, C: 16, H: 16, W: 16, O: 32, R: 3, S: 3, padding: 1,
         format: nm, nm: "2:4", act_sparsity: 0.3}

``format``, ``sparsity`` and ``nm`` may be lists: a workload expands to their product.  Every
problem is a :class:`SpecError` ``"<file>:<line>: <problem>"``.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass, field
from pathlib import Path

import yaml
from sparsemac.hw.config import FORMATS, AcceleratorConfig, ConfigError

__all__ = ["SpecError", "SweepSpec", "Workload", "load_spec", "load_marked_yaml"]


class SpecError(ValueError):
    """A sweep spec is wrong; the message starts with ``file:line:``."""


class MarkedDict(dict):
    """A mapping that remembers its own line and the line of each key (1-based)."""

    line = 0

    def __init__(self, *a, **kw):
        super().__init__(*a, **kw)
        self.lines: dict = {}


class MarkedList(list):
    """A sequence that remembers its own line and the line of each item."""

    line = 0

    def __init__(self, *a):
        super().__init__(*a)
        self.lines: list[int] = []


class _Loader(yaml.SafeLoader):
    pass


def _mapping(loader, node):
    loader.flatten_mapping(node)
    out = MarkedDict()
    out.line = node.start_mark.line + 1
    for k_node, v_node in node.value:
        key = loader.construct_object(k_node, deep=True)
        line = k_node.start_mark.line + 1
        if key in out:
            raise SpecError(f"{{file}}:{line}: duplicate key {key!r} (first on line "
                            f"{out.lines[key]})")
        out[key] = loader.construct_object(v_node, deep=True)
        out.lines[key] = line
    return out


def _sequence(loader, node):
    out = MarkedList(loader.construct_object(n, deep=True) for n in node.value)
    out.line = node.start_mark.line + 1
    out.lines = [n.start_mark.line + 1 for n in node.value]
    return out


_Loader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _mapping)
_Loader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_SEQUENCE_TAG, _sequence)


def load_marked_yaml(text: str, source: str = "<spec>"):
    """Parse YAML; mappings and sequences carry line numbers."""
    try:
        return yaml.load(text, Loader=_Loader)  # noqa: S506 - a SafeLoader subclass
    except SpecError as exc:
        raise SpecError(str(exc).replace("{file}", source)) from None
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        line = mark.line + 1 if mark else 0
        ctx = ""
        if exc.context and exc.context_mark and exc.context_mark is not mark:
            ctx = f" ({exc.context} on line {exc.context_mark.line + 1})"
        raise SpecError(f"{source}:{line}: not valid YAML: {exc.problem}{ctx}") from None


OPS = {"matmul": ("M", "K", "N"), "conv2d": ("C", "H", "W", "O", "R", "S")}
_CONV_OPT = {"stride": 1, "padding": 0, "dilation": 1}
_WL_KEYS = {"name", "op", "format", "sparsity", "nm", "act_sparsity", *_CONV_OPT,
            *OPS["matmul"], *OPS["conv2d"]}
_TOP_KEYS = {"name", "base", "set", "grid", "points", "top", "synth", "cycles", "workloads",
             "seed", "rtl_sample"}
_SYNTH_KEYS = {"target", "device", "fmax"}


@dataclass(frozen=True)
class Workload:
    """One layer in one weight format at one sparsity."""

    name: str
    op: str
    dims: tuple[tuple[str, int], ...]
    format: str
    sparsity: float
    nm: tuple[int, int] | None = None
    act_sparsity: float = 0.0

    def as_dict(self) -> dict:
        return {"name": self.name, "op": self.op, **dict(self.dims), "format": self.format,
                "sparsity": self.sparsity, "nm": f"{self.nm[0]}:{self.nm[1]}" if self.nm else None,
                "act_sparsity": self.act_sparsity}

    @property
    def label(self) -> str:
        s = f"{self.nm[0]}:{self.nm[1]}" if self.nm else f"{self.sparsity:g}"
        return f"{self.name}/{self.format}/{s}"


@dataclass
class SweepSpec:
    """A validated sweep: configs x workloads, and how to measure them."""

    name: str
    path: str
    configs: list[AcceleratorConfig]
    workloads: list[Workload]
    top: str
    target: str | None
    device: str | None
    fmax: bool
    cycles: str
    seed: int = 0
    overrides: list[dict] = field(default_factory=list)
    rtl_sample: int = 0

    @property
    def n_points(self) -> int:
        """Config x workload pairs whose format the config builds."""
        return sum(w.format in c.formats for c in self.configs for w in self.workloads)


def _listify(v):
    return list(v) if isinstance(v, list) else [v]


def _parse_nm(v, err) -> tuple[int, int]:
    if not isinstance(v, str) or v.count(":") != 1:
        err(f"nm must be 'N:M' such as '2:4', not {v!r}")
    a, b = v.split(":")
    if not (a.strip().isdigit() and b.strip().isdigit()):
        err(f"nm must be 'N:M' such as '2:4', not {v!r}")
    n, m = int(a), int(b)
    if not (m in (2, 4, 8, 16, 32) and 1 <= n <= m):
        err(f"nm must have M a power of two in 2..32 and 1 <= N <= M, not {v!r}")
    return n, m


def load_spec(path: str | Path) -> SweepSpec:
    """Read and check a sweep spec; every problem raises :class:`SpecError` with its line."""
    from sparsemac.hw.tops import TOPS, available_tops, default_top

    from .cycles import CYCLE_SOURCES
    from .synth import DEVICES, TARGETS

    path = Path(path)
    try:
        text = path.read_text()
    except OSError as exc:
        raise SpecError(f"cannot read sweep spec {str(path)!r}: {exc.strerror}") from None
    src = str(path)
    doc = load_marked_yaml(text, src)

    def err(msg, line):
        raise SpecError(f"{src}:{line}: {msg}")

    if not isinstance(doc, MarkedDict):
        err("a sweep spec must be a mapping (name, base, grid, workloads ...)", 1)
    for k in doc:
        if k not in _TOP_KEYS:
            err(f"unknown key {k!r}; known keys: {', '.join(sorted(_TOP_KEYS))}", doc.lines[k])
    ln = doc.lines.get
    # -- base config ------------------------------------------------------------------------
    base = doc.get("base", MarkedDict())
    if not isinstance(base, dict) or not set(base) <= {"preset", "config"} or len(base) > 1:
        err("base must be {preset: NAME} or {config: FILE}", ln("base", 1))
    try:
        if "config" in base:
            cpath = Path(base["config"])
            cfg0 = AcceleratorConfig.from_yaml(cpath if cpath.is_absolute()
                                               else path.parent / cpath)
        else:
            cfg0 = AcceleratorConfig.preset(base.get("preset", "default"))
    except (ConfigError, TypeError, ValueError) as exc:
        err(f"base: {exc}", ln("base", 1))
    fixed = doc.get("set", {})
    if not isinstance(fixed, dict):
        err("set must be a mapping of parameter: value", ln("set", 1))
    # -- config points ----------------------------------------------------------------------
    sets: list[tuple[dict, object]] = []  # (overrides, line or {parameter: line})
    grid = doc.get("grid")
    if grid is not None:
        if not isinstance(grid, MarkedDict) or not grid:
            err("grid must be a mapping of parameter: [values]", ln("grid", 1))
        keys = list(grid)
        for combo in itertools.product(*(_listify(grid[k]) for k in keys)):
            over = {}
            for k, v in zip(keys, combo):
                if isinstance(v, dict):     # a value that sets several parameters together
                    over.update(v)
                else:
                    over[k] = v
            sets.append((over, grid.lines))
    points = doc.get("points")
    if points is not None:
        if not isinstance(points, MarkedList):
            err("points must be a list of {parameter: value} mappings", ln("points", 1))
        for item, line in zip(points, points.lines):
            if not isinstance(item, dict):
                err(f"a point must be a mapping of parameter: value, not {item!r}", line)
            sets.append((dict(item), line))
    if not sets:
        sets = [({}, doc.line)]
    configs, seen = [], set()
    for i, (over, line) in enumerate(sets):
        data = {**cfg0.to_dict(), **dict(fixed), **over}
        data["name"] = f"{doc.get('name', path.stem)}-{i}"
        try:
            cfg = AcceleratorConfig.from_dict(data, source="point")
        except (ConfigError, TypeError, ValueError) as exc:
            if isinstance(line, dict):  # a grid: the line of the parameter the error names
                param = str(exc).split(" ", 1)[0]
                line = line.get(param, grid.line)
            err(f"config point {over or 'base'}: {exc}", line)
        if cfg not in seen:  # equal configs (name excluded) are measured once
            seen.add(cfg)
            configs.append(cfg)
    # -- top, synthesis, cycle model --------------------------------------------------------
    top = doc.get("top") or default_top(cfg0)
    if top not in TOPS:
        err(f"top must be one of {', '.join(TOPS)}, not {top!r}", ln("top"))
    if top not in available_tops():
        err(f"top {top!r} is not available yet (available: {', '.join(available_tops())})",
            ln("top"))
    synth = doc.get("synth", {"target": "generic"})
    target = device = None
    fmax = False
    if synth not in (None, "none"):
        if not isinstance(synth, dict):
            err("synth must be {target: ..., device: ..., fmax: bool} or none", ln("synth"))
        for k in synth:
            if k not in _SYNTH_KEYS:
                err(f"unknown synth key {k!r}; known: {', '.join(sorted(_SYNTH_KEYS))}",
                    synth.lines[k])
        target = synth.get("target", "generic")
        if target not in TARGETS:
            err(f"synth target must be one of {', '.join(TARGETS)}, not {target!r}",
                synth.lines.get("target", synth.line))
        device = synth.get("device")
        if device is not None and device not in DEVICES[target]:
            err(f"device must be one of {', '.join(DEVICES[target])} for {target}, "
                f"not {device!r}", synth.lines["device"])
        fmax = synth.get("fmax", False)
        if not isinstance(fmax, bool):
            err(f"fmax must be true or false, not {fmax!r}", synth.lines["fmax"])
        if fmax and target not in ("ecp5", "ice40"):
            err(f"fmax needs place and route: target ecp5 or ice40, not {target!r}",
                synth.lines["fmax"])
    cycles = doc.get("cycles", "auto")
    if cycles not in ("auto", *CYCLE_SOURCES):
        err(f"cycles must be one of auto, {', '.join(CYCLE_SOURCES)}, not {cycles!r}",
            ln("cycles"))
    seed = doc.get("seed", 0)
    if isinstance(seed, bool) or not isinstance(seed, int):
        err(f"seed must be an integer, not {seed!r}", ln("seed"))
    rtl_sample = doc.get("rtl_sample", 0)
    if isinstance(rtl_sample, bool) or not isinstance(rtl_sample, int) or not \
            0 <= rtl_sample <= 64:
        err(f"rtl_sample must be an integer between 0 and 64, not {rtl_sample!r}",
            ln("rtl_sample"))
    if rtl_sample and cycles == "roofline":
        err("rtl_sample compares the RTL with the tile model: it needs cycles auto or "
            "tile_model, not roofline", ln("rtl_sample"))
    # -- workloads --------------------------------------------------------------------------
    wls = doc.get("workloads")
    if not isinstance(wls, MarkedList) or not wls:
        err("workloads must be a non-empty list of layers", ln("workloads", doc.line))
    workloads = []
    for item, line in zip(wls, wls.lines):
        workloads += _workloads(item, line, err, configs)
    return SweepSpec(name=str(doc.get("name", path.stem)), path=src, configs=configs,
                     workloads=workloads, top=top, target=target, device=device, fmax=fmax,
                     cycles=cycles, seed=seed, rtl_sample=rtl_sample)


def _workloads(item, line, err, configs) -> list[Workload]:
    if not isinstance(item, MarkedDict):
        err(f"a workload must be a mapping (name, op, dims, format, sparsity), not {item!r}",
            line)
    at = item.lines.get
    for k in item:
        if k not in _WL_KEYS:
            err(f"unknown workload key {k!r}; known: {', '.join(sorted(_WL_KEYS))}", at(k))
    op = item.get("op", "matmul")
    if op not in OPS:
        err(f"op must be one of {', '.join(OPS)}, not {op!r}", at("op", line))
    dims = []
    for d in OPS[op] + (tuple(_CONV_OPT) if op == "conv2d" else ()):
        v = item.get(d, _CONV_OPT.get(d))
        lo = 0 if d == "padding" else 1
        if v is None:
            err(f"{op} workload needs {d} ({', '.join(OPS[op])})", line)
        if isinstance(v, bool) or not isinstance(v, int) or v < lo:
            err(f"{d} must be an integer >= {lo}, not {v!r}", at(d, line))
        dims.append((d, v))
    name = str(item.get("name", f"{op}@{line}"))
    act_sp = item.get("act_sparsity", 0.0)
    if isinstance(act_sp, bool) or not isinstance(act_sp, int | float) or not 0 <= act_sp < 1:
        err(f"act_sparsity must be a number in [0, 1), not {act_sp!r}", at("act_sparsity", line))
    out = []
    fmts = _listify(item.get("format", "dense"))
    for fmt in fmts:
        if fmt not in FORMATS:
            err(f"format must be one of {', '.join(FORMATS)}, not {fmt!r}", at("format", line))
        if configs and not any(fmt in cfg.formats for cfg in configs):
            err(f"format {fmt!r} is not built into any config of the sweep (formats: "
                f"{', '.join(configs[0].formats)})", at("format", line))
        if fmt == "nm":
            if "nm" not in item:
                err("an nm workload needs nm: 'N:M' (e.g. '2:4')", line)
            for v in _listify(item["nm"]):
                n, m = _parse_nm(v, lambda msg: err(msg, at("nm")))
                for cfg in configs:
                    if m > cfg.nm_max_m:
                        err(f"nm M must be at most nm_max_m ({cfg.nm_max_m}), not {m}", at("nm"))
                out.append(Workload(name, op, tuple(dims), fmt, 1 - n / m, (n, m),
                                    float(act_sp)))
            continue
        for sp in _listify(item.get("sparsity", 0.0)):
            if isinstance(sp, bool) or not isinstance(sp, int | float) or not 0 <= sp < 1:
                err(f"sparsity must be a number in [0, 1), not {sp!r}", at("sparsity", line))
            out.append(Workload(name, op, tuple(dims), fmt, float(sp), None, float(act_sp)))
    return out
