"""Run a network end to end: a YAML layer list or an ONNX model (docs/host.md).

The network is compiled (pruning, int8 quantization, packing, requantization, activation
tables) into memory images with descriptor tables, run on an engine job by job, and every
layer's output buffer is compared with the golden model.  ``--engine model`` is the functional
model of the accelerator (it reads only the image and the descriptors); ``--engine rtl`` drives
the accelerator top on Verilator.  An ONNX model (float with a calibration set, or QDQ-quantized)
takes its input, labels and calibration set from ``.npy`` / ``.npz`` files; the report then has
``accuracy``, ``reference_accuracy`` (the QDQ model on ONNX Runtime) and ``float_accuracy``.
Exit code 0 when every layer matches, 1 on a mismatch or an accelerator error, 2 on a user
mistake.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np

from .cmd_config import add_config_arguments, config_from_args
from .main import UsageError
from .paths import out_file

__all__ = ["add_arguments", "main"]

#: Array names looked up in an ``.npz`` file, in order, per role.
NPZ_KEYS = {"input": ("images", "input", "inputs", "x", "X"),
            "labels": ("labels", "y", "targets"),
            "calib": ("calib", "images", "input", "x", "X")}


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("network", metavar="NETWORK", help="layer list (.yaml, docs/host.md) or "
                   "ONNX model (.onnx, docs/host.md section 6)")
    p.add_argument("--engine", choices=("rtl", "model"), default="model",
                   help="model: functional model of the accelerator; rtl: the accelerator top "
                   "on Verilator")
    add_config_arguments(p)
    p.add_argument("--seed", type=int, default=None,
                   help="seed of random weights/input (default: the file's seed)")
    p.add_argument("--base", type=lambda s: int(s, 0), default=None, metavar="ADDR",
                   help="memory window base address (default 0x10000)")
    p.add_argument("--input", metavar="FILE", type=Path,
                   help=".npy / .npz input (an .npz: array 'images' or 'input'); ONNX models: "
                   "the model's layout [N, K] or [N, C, H, W]; layer lists: the network's input "
                   "layout [K, N], [C, H, W] or [N, C, H, W]")
    p.add_argument("--labels", metavar="FILE", type=Path,
                   help=".npy / .npz class labels, one per input (an .npz: array 'labels'); "
                   "adds accuracy to the report")
    p.add_argument("--calib", metavar="FILE", type=Path,
                   help=".npy / .npz calibration inputs (same layout as --input) that fix every "
                   "scale; default: the input itself")
    p.add_argument("--limit", type=int, default=None, metavar="N",
                   help="run the first N inputs only (and their labels)")
    p.add_argument("--format", metavar="SPEC", default=None,
                   help="ONNX models: weight format per layer, e.g. nm:2:4, bitmap:0.25 or "
                   "'fc1=dense,*=auto' (default auto: the weights' own sparsity decides)")
    p.add_argument("--float-model", metavar="FILE.onnx", type=Path, default=None,
                   help="ONNX float model for float_accuracy (default: NAME.onnx next to "
                   "NAME_int8.onnx, else the QDQ model without its activation Q/DQ pairs)")
    p.add_argument("--save-outputs", metavar="FILE.npz", type=Path, default=None,
                   help="write the network's outputs (batch first: 'outputs' as stored, "
                   "'values' real) to an .npz file")
    p.add_argument("--tile-split", choices=("auto", "rows", "cols"), default="auto",
                   help="how each layer is spread over the tiles: by output rows, by output "
                        "columns where that fits, or per layer the faster of the two by the "
                        "cycle model (docs/spec.md section 8.1)")
    p.add_argument("--tables", choices=("auto", "early", "late"), default="auto",
                   help="when each layer's activation table and requant records are read: "
                        "before the activations, after the weight bodies while the tiles "
                        "compute (LATE_TABLES), or per layer the faster of the two by the "
                        "cycle model (docs/spec.md section 8)")
    p.add_argument("--limits", choices=("hardware", "architecture"), default="hardware",
                   help="model engine: refuse what the configuration's hardware cannot run "
                        "(hardware), or only what docs/spec.md forbids (architecture: e.g. "
                        "pools with kernel 16, a global pool above 15 x 15, the residual "
                        "add)")
    p.add_argument("--reuse-buffers", action="store_true",
                   help="let activation buffers share bytes once their last reader ran "
                        "(smaller window; an intermediate output a later layer overwrote is "
                        "compared as the model engine wrote it, not compared on the rtl "
                        "engine; docs/host.md section 3)")
    p.add_argument("--json", action="store_true", help="one JSON object on stdout")


def _array(path: Path, role: str, flag: str) -> np.ndarray:
    try:
        data = np.load(path, allow_pickle=False)
    except (OSError, ValueError, EOFError) as exc:
        raise UsageError(f"{flag} {str(path)!r} must be a readable .npy or .npz file "
                         f"({str(exc).splitlines()[0] if str(exc) else type(exc).__name__})"
                         ) from None
    if isinstance(data, np.ndarray):
        a = data
    else:
        key = next((k for k in NPZ_KEYS[role] if k in data.files), None)
        if key is None:
            raise UsageError(f"{flag} {str(path)!r} must hold an array named one of "
                             f"{', '.join(NPZ_KEYS[role])}, not {', '.join(data.files) or 'none'}")
        a = data[key]
    if a.dtype == object or not (np.issubdtype(a.dtype, np.integer)
                                 or np.issubdtype(a.dtype, np.floating)):
        raise UsageError(f"{flag} {str(path)!r} must hold numbers, not {a.dtype}")
    if a.size == 0:
        raise UsageError(f"{flag} {str(path)!r} must not be empty")
    if np.issubdtype(a.dtype, np.floating) and not np.all(np.isfinite(a)):
        raise UsageError(f"{flag} {str(path)!r} must hold finite numbers only (no NaN or inf)")
    return a


def _table(rep: dict) -> str:
    out = [f"network {rep['network']} on the {rep['engine']} engine, config {rep['config']}, "
           f"seed {rep['seed']}",
           f"memory window {rep['mem_base']:#x} + {rep['mem_bytes']} bytes, "
           f"{rep['desc_count']} descriptors at {rep['desc_base']:#x}"
           + (f" (first of {rep['jobs']} jobs: {rep['split']})" if rep.get("jobs", 1) > 1
              else ""),
           f"cycles: {rep['cycle_model']}", ""]
    ow = max([7] + [len(e["op"]) for e in rep["layers"]])     # global_avgpool: 14
    hdr = (f"{'#':>2} {'name':<12} {'op':<{ow}} {'format':<7} {'split':<5} {'tables':<6} "
           f"{'M x K x N':<16} "
           f"{'density':>7} "
           f"{'cycles':>8} {'roofline':>8} {'ach/roof':>8} {'bound':<7} {'mismatch':>8}")
    out += [hdr, "-" * len(hdr)]
    for e in rep["layers"]:
        mkn = f"{e['m']}x{e['k']}x{e['n']}"
        dens = "-" if e["density"] is None else f"{e['density']:.3f}"   # pools: no weights
        cyc = e.get("cycles", "-")
        roof = e.get("roofline_cycles", "-")
        ach = f"{e['achieved_over_roofline']:.2f}" if "achieved_over_roofline" in e else "-"
        out.append(f"{e['index']:>2} {e['name'][:12]:<12} {e['op']:<{ow}} "
                   f"{e['format'] or '-':<7} "
                   f"{e.get('tile_split', '-'):<5} {e.get('tables', '-'):<6} {mkn:<16} "
                   f"{dens:>7} {cyc:>8} "
                   f"{roof:>8} {ach:>8} "
                   f"{e.get('bound', '-'):<7} {e['mismatches']:>8}")
    out += ["-" * len(hdr),
            f"   {'total':<12} {'':<{ow}} {'':<7} {'':<5} {'':<16} {'':>7} {rep['cycles']:>8} "
            f"{rep['roofline_cycles']:>8} {rep['achieved_over_roofline']:>8.2f} {'':<7} "
            f"{rep['mismatches']:>8}"]
    status = rep["status"]
    if status != "OK":
        status += f" at descriptor {rep['error_desc']}: {rep['error']}"
    out.append(f"status {status}; {rep['mismatches']} mismatches; batch {rep.get('batch', 1)}")
    acc = [f"{k} {rep[k]:.4f}" for k in ("accuracy", "reference_accuracy", "float_accuracy")
           if rep.get(k) is not None]
    if acc:
        out.append(", ".join(acc))
    if rep.get("reference"):
        r = rep["reference"]
        out.append(f"ONNX Runtime agreement: {r['values']} values, max {r['max_lsb']} LSB, "
                   f"{r['over_1_lsb']} more than 1 LSB, {r['exact']} exact")
    return "\n".join(out)


def _limit(a, n, axis=0):
    if a is None or n is None:
        return a
    return a[:n] if axis == 0 else a[:, :n]


def main(args) -> int:
    from ..host import NetworkError, load_network
    from ..host.run import run, save_outputs

    cfg = config_from_args(args)
    if args.limit is not None and args.limit < 1:
        raise UsageError(f"--limit must be >= 1, not {args.limit}")
    save = out_file(args.save_outputs, "--save-outputs") if args.save_outputs else None
    x = _array(args.input, "input", "--input") if args.input else None
    labels = _array(args.labels, "labels", "--labels") if args.labels else None
    calib = _array(args.calib, "calib", "--calib") if args.calib else None
    is_onnx = str(args.network).lower().endswith(".onnx")
    if args.format is not None and not is_onnx:
        raise UsageError("--format applies to ONNX models; a layer list gives format per layer")
    if args.float_model is not None and not is_onnx:
        raise UsageError("--float-model applies to ONNX models")
    if args.limits != "hardware" and args.engine != "model":
        raise UsageError(f"--limits {args.limits} applies to the model engine, not --engine "
                         f"{args.engine}")
    if labels is not None and (labels.ndim != 1 or not np.issubdtype(labels.dtype, np.integer)):
        raise UsageError(f"--labels {str(args.labels)!r} must be a 1-D array of integer "
                         f"classes, not {labels.dtype} of shape {list(labels.shape)}")
    onnx_model = None
    try:
        if is_onnx:
            from ..host.onnx_import import load_onnx

            onnx_model = load_onnx(args.network, formats=args.format, cfg=cfg)
            if x is None:
                raise UsageError("an ONNX model needs --input FILE (.npy / .npz) with its input")
            x = _limit(x, args.limit)
            x = _onnx_layout(onnx_model, x)
            net = onnx_model.with_input(x)
            if calib is not None:
                calib = _onnx_layout(onnx_model, calib)
                if onnx_model.input_layout == "matrix":
                    calib = calib.T
        else:
            net = load_network(args.network)
            if x is not None:
                net = _with_values(net, x, args)
        labels = _limit(labels, args.limit)
        if labels is not None and len(labels) != _batch_of(net):
            raise UsageError(f"--labels must have one label per input ({_batch_of(net)}), not "
                             f"{len(labels)}")
        if args.engine == "rtl":
            from ..sim.rtl_engine import run_rtl

            rr = run_rtl(net, cfg, seed=args.seed, base=args.base, calib=calib, labels=labels,
                         progress=_progress, tile_split=args.tile_split,
                         tables=args.tables, reuse_buffers=args.reuse_buffers)
        else:
            rr = run(net, cfg, seed=args.seed, base=args.base, calib=calib, labels=labels,
                     progress=_progress, tile_split=args.tile_split, tables=args.tables,
                     limits=args.limits,
                     reuse_buffers=args.reuse_buffers)
        rep = rr.report
        if onnx_model is not None:
            _onnx_report(rep, rr, onnx_model, x, labels, args)
    except NetworkError as exc:
        raise UsageError(str(exc)) from None
    if save is not None:
        save_outputs(rr, save)
        rep["saved_outputs"] = str(save)
    print(json.dumps(rep) if args.json else _table(rep))
    return 0 if rep["status"] == "OK" and rep["mismatches"] == 0 else 1


def _onnx_layout(model, a: np.ndarray) -> np.ndarray:
    """Images ``[N, 1, 8, 8]`` for a model that reads ``[N, 64]`` and the other way round
    (the same values in C, H, W order)."""
    shp = model.network.input_shape
    per = int(np.prod(shp)) if model.input_layout == "image" else shp[0]
    if a.ndim >= 2 and int(np.prod(a.shape[1:])) == per:
        return a.reshape(len(a), *shp) if model.input_layout == "image" else \
            a.reshape(len(a), per)
    return a


def _progress(msg: str) -> None:
    print(f"[run] {msg}", file=sys.stderr, flush=True)


def _batch_of(net) -> int:
    return net.input_shape[1] if len(net.input_shape) == 2 else net.batch


def _with_values(net, x, args):
    """A layer list on the input of ``--input`` (its own layout)."""
    from dataclasses import replace

    shp = net.input_shape
    if len(shp) == 2:
        if x.ndim != 2 or x.shape[0] != shp[0]:
            raise UsageError(f"--input must have the shape [{shp[0]}, N] of the network's "
                             f"input matrix, not {list(x.shape)}")
        x = _limit(x, args.limit, axis=1)
        return replace(net.with_columns(x.shape[1]), input_values=x)
    if x.ndim == 3:
        x = x[None]
    if x.ndim != 4 or tuple(x.shape[1:]) != tuple(shp):
        raise UsageError(f"--input must have the shape [N, {', '.join(map(str, shp))}] of the "
                         f"network's input images, not {list(x.shape)}")
    x = _limit(x, args.limit)
    return replace(net, input_values=x[0] if len(x) == 1 else x, batch=len(x))


def _onnx_report(rep, rr, model, x, labels, args) -> None:
    """ONNX Runtime on the same inputs: the reference (QDQ model) and the float model."""
    from ..host.onnx_reference import compare, float_graph, ort_run
    from ..host.run import accuracy

    rep["model"] = str(model.path)
    rep["quantized_model"] = model.quantized
    rep["formats"] = model.formats
    xf = np.asarray(x, dtype=np.float32)
    if model.quantized:
        ref = ort_run(model.path, xf)
        rep["reference"] = compare(rr.values, ref, rep["output_scale"])
        rep["reference_accuracy"] = accuracy(ref, labels) if labels is not None else None
    else:
        rep["reference"] = None
        rep["reference_accuracy"] = None
        rep["reference_note"] = ("a float model, quantized by sparsemac's calibration: ONNX "
                                 "Runtime has no model of that quantization to run; quantize "
                                 "it with onnxruntime.quantization.quantize_static (QDQ) and "
                                 "run that file for a reference")
    fpath = args.float_model
    if fpath is None and model.quantized:
        cand = model.path.with_name(model.path.name.replace("_int8.onnx", ".onnx"))
        fpath = cand if cand != model.path and cand.is_file() else None
    if labels is not None:
        if fpath is not None:
            fl = ort_run(fpath, xf)
            rep["float_model"] = str(fpath)
        elif model.quantized:
            fl = ort_run(float_graph(model.path), xf)
            rep["float_model"] = "the QDQ model without its activation Q/DQ pairs"
        else:
            fl = ort_run(model.path, xf)
            rep["float_model"] = str(model.path)
        rep["float_accuracy"] = accuracy(fl, labels)
