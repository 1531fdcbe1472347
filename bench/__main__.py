"""``python -m bench``: run every ``bench/*_bench.py`` and print one table with ratios.

Options: ``--seconds S`` per measurement (default 1.2), ``--rounds N`` rounds per case (medians are
reported, ratios are taken round by round; default 5), ``--only NAME`` to run one module (e.g.
``server``).
"""

from gevent import monkey

monkey.patch_all()

import argparse  # noqa: E402
import importlib  # noqa: E402
import os  # noqa: E402
import pkgutil  # noqa: E402
import sys  # noqa: E402
import time  # noqa: E402

import bench  # noqa: E402
from bench import harness  # noqa: E402


def main(argv=None):
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=1.2, help="seconds per measurement")
    parser.add_argument("--rounds", type=int, default=5,
                        help="rounds per case (medians are reported; ratios per round)")
    parser.add_argument("--only", action="append", default=[],
                        help="run only this module (e.g. server for server_bench)")
    args = parser.parse_args(argv)
    names = sorted(m.name for m in pkgutil.iter_modules(bench.__path__)
                   if m.name.endswith("_bench"))
    if args.only:
        names = [n for n in names if n.removesuffix("_bench") in args.only or n in args.only]
    harness.pin_load_generator()
    rows = []
    started = time.monotonic()
    for name in names:
        module = importlib.import_module(f"bench.{name}")
        print(f"running {name} ...", file=sys.stderr, flush=True)
        rows.extend(module.run(args))
    harness.print_table(rows)
    load = " ".join(f"{x:.1f}" for x in os.getloadavg())
    print(f"\n{len(rows)} rows in {time.monotonic() - started:.0f}s ({args.rounds} rounds of"
          f" {args.seconds}s; load average {load}); ratios are per-round medians against each"
          " group's baseline", file=sys.stderr)


if __name__ == "__main__":
    main()
