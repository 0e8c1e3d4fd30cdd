"""Parameter sweep from a YAML spec: configs x workloads -> area (Yosys), Fmax (nextpnr, when
asked), cycles (cycle model), throughput; results in SQLite and CSV, a markdown table and a
Pareto plot.  An interrupted sweep resumes where it stopped (finished points are kept)."""

from __future__ import annotations

import argparse

from .main import UsageError


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("spec", metavar="SPEC.yaml", help="sweep spec (see examples/sweep_*.yaml)")
    p.add_argument("-o", "--out", metavar="DIR", required=True, help="output folder")
    p.add_argument("--jobs", type=int, default=1, metavar="N", help="parallel jobs (default 1)")
    p.add_argument("--executor", default="local", metavar="KIND",
                   help="local (process pool, default) or dask")
    p.add_argument("--scheduler", metavar="ADDR",
                   help="Dask scheduler address (default: a LocalCluster of --jobs workers)")
    p.add_argument("--check", action="store_true", help="check the spec and stop")
    p.add_argument("--quiet", action="store_true", help="no progress bar")


def main(args) -> int:
    from sparsemac.flow.spec import SpecError, load_spec
    from sparsemac.flow.synth import SynthError

    if args.executor not in ("local", "dask"):
        raise UsageError(f"--executor must be local or dask, not {args.executor!r}")
    if args.jobs < 1:
        raise UsageError(f"--jobs must be at least 1, not {args.jobs}")
    if args.scheduler and args.executor != "dask":
        raise UsageError("--scheduler needs --executor dask")
    try:
        spec = load_spec(args.spec)
    except SpecError as exc:
        raise UsageError(str(exc)) from None
    if args.check:
        print(f"{args.spec}: ok, {len(spec.configs)} configs x {len(spec.workloads)} workloads "
              f"= {spec.n_points} points")
        return 0
    if args.executor == "dask":
        import importlib.util

        if importlib.util.find_spec("distributed") is None:
            raise UsageError("--executor dask needs dask.distributed: pip install -e '.[flow]'")
    from sparsemac.cli.paths import out_dir
    from sparsemac.flow.sweep import run_sweep

    out_dir(args.out)
    try:
        res = run_sweep(spec, args.out, jobs=args.jobs, executor=args.executor,
                        scheduler=args.scheduler, progress=not args.quiet)
    except SynthError as exc:
        raise UsageError(str(exc)) from None
    print(f"{res['points']} points: {res['computed']} computed, {res['reused']} reused; "
          + ", ".join(f"{args.out}/{f}" for f in res["files"]))
    return 0
