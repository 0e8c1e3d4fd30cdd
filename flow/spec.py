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
    cycles: auto                  # auto | roofline | tile_model | network (flow/cycles.py)
    clock: auto                   # auto | placed | none | {estimate_mhz: MHZ, note: TEXT}
    rtl_sample: 4                 # optional: run 4 points (spread evenly) on the tile's RTL
    workloads:
      - {name: fc, op: matmul, M: 64, K: 256, N: 16, format: [dense, bitmap], sparsity: 0.75}
      - {name: c3, op: conv2d, C: 16, H: 16, W: 16, O: 32, R: 3, S: 3, padding: 1,
         format: nm, nm: "2:4", act_sparsity: 0.3}

``clock`` is the clock a point's throughput is quoted at (`flow.sweep_report.choose_clock`):
``auto`` (default) the placed Fmax where the point was placed (``synth: {fmax: true}``), else
no throughput; ``placed`` the same, but the spec must ask for place and route; ``none`` no
throughput at all (cycles and speedups only); ``{estimate_mhz: 37.08, note: "..."}`` a clock
estimate for the points that were not placed, reported as ``estimate`` with the note saying
where it comes from.  The config's ``target_mhz`` is never used.

``format``, ``sparsity`` and ``nm`` may be lists: a workload expands to their product.  Each
point is one layer of the `sparsemac.host.network` schema (:attr:`Workload.layer`, a
`LayerSpec`): ``M``/``O`` are ``out_features``/``out_channels``, ``K, N`` / ``C, H, W`` the input
shape, ``R, S`` the kernel, ``sparsity`` is ``1 - density``; that schema checks the format, N:M
and geometry.  Every problem is a :class:`SpecError` ``"<file>:<line>: <problem>"``.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path

from sparsemac.host.network import LayerSpec, NetworkError, network_from_dict
from sparsemac.hw.config import AcceleratorConfig, ConfigError

from sparsemac.yamlfile import MarkedDict, MarkedList, load_text, read_text

__all__ = ["SpecError", "SweepSpec", "Workload", "load_spec", "load_marked_yaml"]


class SpecError(ValueError):
    """A sweep spec is wrong; the message starts with ``file:line:``."""


def load_marked_yaml(text: str, source: str = "<spec>"):
    """Parse YAML (:mod:`sparsemac.yamlfile`: duplicate keys refused, line numbers kept)."""
    return load_text(text, source, SpecError)


OPS = {"matmul": ("M", "K", "N"), "conv2d": ("C", "H", "W", "O", "R", "S")}
_CONV_OPT = {"stride": 1, "padding": 0, "dilation": 1}
_WL_KEYS = {"name", "op", "format", "sparsity", "nm", "act_sparsity", *_CONV_OPT,
            *OPS["matmul"], *OPS["conv2d"]}
_TOP_KEYS = {"name", "base", "set", "grid", "points", "top", "synth", "cycles", "workloads",
             "seed", "rtl_sample", "clock"}
_SYNTH_KEYS = {"target", "device", "fmax"}
CLOCK_MODES = ("auto", "placed", "none")
_CLOCK_KEYS = {"estimate_mhz", "note"}


@dataclass(frozen=True)
class Workload:
    """One layer in one weight format at one sparsity.

    ``dims`` are the spec's keys (matmul ``M, K, N``; conv2d ``C, H, W, O, R, S, stride,
    padding, dilation``); :meth:`network` and :attr:`layer` are the same layer in the
    `sparsemac.host.network` schema.
    """

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

    def network(self) -> dict:
        """The workload as a one-layer network of the `sparsemac.host.network` schema."""
        d = dict(self.dims)
        layer = {"name": self.name, "op": self.op, "format": self.format}
        if self.nm:     # (N, M), or the spec's 'N:M' text before it is parsed
            layer["nm"] = self.nm if isinstance(self.nm, str) else list(self.nm)
        else:
            layer["density"] = 1.0 - self.sparsity
        if self.op == "matmul":
            layer["out_features"] = d["M"]
            shape = [d["K"], d["N"]]
        else:
            layer.update(out_channels=d["O"], kernel=[d["R"], d["S"]], stride=d["stride"],
                         padding=d["padding"], dilation=d["dilation"])
            shape = [d["C"], d["H"], d["W"]]
        return {"input": {"shape": shape}, "layers": [layer]}

    @cached_property
    def layer(self) -> LayerSpec:
        """The validated layer (raises `sparsemac.host.NetworkError`)."""
        return network_from_dict(self.network(), source="workload").layers[0]

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
    clock: str = "auto"
    clock_mhz: float | None = None
    clock_note: str | None = None

    @property
    def n_points(self) -> int:
        """Config x workload pairs whose format the config builds."""
        return sum(w.format in c.formats for c in self.configs for w in self.workloads)


def _listify(v):
    return list(v) if isinstance(v, list) else [v]


#: the spec key a `sparsemac.host.network` field of a workload comes from
_FIELD_KEYS = {"format": "format", "nm": "nm", "density": "sparsity", "out_features": "M",
               "out_channels": "O", "kernel": "R", "stride": "stride", "padding": "padding",
               "dilation": "dilation", "name": "name"}


def _checked(wl: Workload, err, at, line) -> Workload:
    """``wl`` once its layer passes the `sparsemac.host.network` schema; a `NetworkError` is
    reported on the line of the spec key it names (``layers[0].nm ...`` -> ``nm ...``)."""
    try:
        wl.layer  # noqa: B018 - validates
    except NetworkError as exc:
        msg = str(exc).removeprefix("workload: ")
        path, rest = msg.split(" ", 1)
        key = _FIELD_KEYS.get(path.rsplit(".", 1)[-1]) if path.startswith("layers[") else None
        err(f"{key or path} {rest}", at(key, line) if key else line)
    return wl


def load_spec(path: str | Path) -> SweepSpec:
    """Read and check a sweep spec; every problem raises :class:`SpecError` with its line."""
    from sparsemac.hw.tops import TOPS, available_tops, default_top

    from .cycles import CYCLE_SOURCES
    from .synth import DEVICES, TARGETS

    path = Path(path)
    text = read_text(path, "sweep spec", SpecError)
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
            msg = str(exc).removeprefix("point: ")     # the spec names the place itself
            if isinstance(line, dict):  # a grid: the line of the parameter the error names
                param = msg.split(" ", 1)[0]
                line = line.get(param, grid.line)
            err(f"config point {over or 'base'}: {msg}", line)
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
    clock, clock_mhz, clock_note = _clock(doc, fmax, err)
    seed = doc.get("seed", 0)
    if isinstance(seed, bool) or not isinstance(seed, int):
        err(f"seed must be an integer, not {seed!r}", ln("seed"))
    rtl_sample = doc.get("rtl_sample", 0)
    if isinstance(rtl_sample, bool) or not isinstance(rtl_sample, int) or not \
            0 <= rtl_sample <= 64:
        err(f"rtl_sample must be an integer between 0 and 64, not {rtl_sample!r}",
            ln("rtl_sample"))
    if rtl_sample and cycles == "roofline":
        err("rtl_sample compares the RTL with the tile model: it needs cycles auto, "
            "tile_model or network, not roofline", ln("rtl_sample"))
    # -- workloads --------------------------------------------------------------------------
    wls = doc.get("workloads")
    if not isinstance(wls, MarkedList) or not wls:
        err("workloads must be a non-empty list of layers", ln("workloads", doc.line))
    workloads = []
    for item, line in zip(wls, wls.lines):
        workloads += _workloads(item, line, err, configs)
    return SweepSpec(name=str(doc.get("name", path.stem)), path=src, configs=configs,
                     workloads=workloads, top=top, target=target, device=device, fmax=fmax,
                     cycles=cycles, seed=seed, rtl_sample=rtl_sample, clock=clock,
                     clock_mhz=clock_mhz, clock_note=clock_note)


def _clock(doc, fmax: bool, err) -> tuple[str, float | None, str | None]:
    """``(mode, estimate MHz, note)`` of the spec's ``clock`` key (module docstring)."""
    clock = doc.get("clock", "auto")
    line = doc.lines.get("clock")
    if isinstance(clock, dict):
        for k in clock:
            if k not in _CLOCK_KEYS:
                err(f"unknown clock key {k!r}; known: {', '.join(sorted(_CLOCK_KEYS))}",
                    clock.lines[k])
        mhz = clock.get("estimate_mhz")
        if isinstance(mhz, bool) or not isinstance(mhz, int | float) or not 0 < mhz <= 1000:
            err(f"clock estimate_mhz must be a number of MHz in (0, 1000], not {mhz!r}",
                clock.lines.get("estimate_mhz", line))
        note = clock.get("note")
        if not isinstance(note, str) or not note.strip():
            err("clock estimate needs a note: where the estimate comes from (e.g. a placed "
                "build of a related config)", clock.lines.get("note", line))
        return "estimate", float(mhz), note.strip()
    if clock not in CLOCK_MODES:
        err(f"clock must be one of {', '.join(CLOCK_MODES)} or {{estimate_mhz: MHZ, note: "
            f"TEXT}}, not {clock!r}", line)
    if clock == "placed" and not fmax:
        err("clock: placed needs place and route of every point: synth {target: ecp5 or "
            "ice40, fmax: true}", line)
    return clock, None, None


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
        if fmt == "nm":
            if "nm" not in item:
                err("an nm workload needs nm: 'N:M' (e.g. '2:4')", line)
            for v in _listify(item["nm"]):
                # the schema parses N:M: check it with a placeholder first, then the point
                n, m = _checked(Workload(name, op, tuple(dims), fmt, 0.0, v), err, at,
                                line).layer.nm
                _in_configs(fmt, err, at("format", line), configs)
                for cfg in configs:
                    if m > cfg.nm_max_m:
                        err(f"nm M must be at most nm_max_m ({cfg.nm_max_m}), not {m}", at("nm"))
                out.append(_checked(Workload(name, op, tuple(dims), fmt, 1 - n / m, (n, m),
                                             float(act_sp)), err, at, line))
            continue
        for sp in _listify(item.get("sparsity", 0.0)):
            if isinstance(sp, bool) or not isinstance(sp, int | float) or not 0 <= sp < 1:
                err(f"sparsity must be a number in [0, 1), not {sp!r}", at("sparsity", line))
            wl = _checked(Workload(name, op, tuple(dims), fmt, float(sp), None, float(act_sp)),
                          err, at, line)
            _in_configs(fmt, err, at("format", line), configs)
            out.append(wl)
    return out


def _in_configs(fmt, err, line, configs) -> None:
    if configs and not any(fmt in cfg.formats for cfg in configs):
        err(f"format {fmt!r} is not built into any config of the sweep (formats: "
            f"{', '.join(configs[0].formats)})", line)
