"""``python -m tools.benchmarks`` (``make bench``): measure the hourly path at fleet scale.

Prints the report table and writes ``bench.json`` and ``bench.md`` to the output directory
(``bench-results/`` by default).
"""

from __future__ import annotations

import argparse
from pathlib import Path

from tools.benchmarks.report import markdown
from tools.benchmarks.run import ONLY, BenchConfig, run_benchmark, write_json


def parse_args(argv: list[str] | None = None) -> BenchConfig:
    defaults = BenchConfig()
    parser = argparse.ArgumentParser(prog="python -m tools.benchmarks", description=__doc__)
    parser.add_argument("--devices", type=int, default=defaults.devices)
    parser.add_argument(
        "--growth",
        default=",".join(str(n) for n in defaults.growth),
        help="fleet sizes for the feature-step growth, comma-separated ('' to skip)",
    )
    parser.add_argument("--seed", type=int, default=defaults.seed)
    parser.add_argument("--no-spark", action="store_true", help="skip the PySpark reference")
    parser.add_argument("--no-daily", action="store_true", help="skip the daily detectors")
    parser.add_argument(
        "--scale",
        type=int,
        default=defaults.scale_copies,
        metavar="COPIES",
        help="also run the whole hourly path on COPIES times the fleet (the simulated fleet "
        "tiled; cached): make bench-scale runs 10 × 100,000 devices",
    )
    parser.add_argument("--out", type=Path, default=defaults.out)
    parser.add_argument("--step-timeout", type=float, default=defaults.step_timeout_s)
    parser.add_argument(
        "--only",
        choices=sorted(ONLY),
        help="run part of the plan on the project home an earlier full run left in --out: "
        "'daily' = day of features, daily training, daily scoring (also one step per daily "
        "asset); 'daily_scores' = the daily scoring steps alone (needs that run's day of "
        "features and trained daily detectors). Reports go to bench-<part>.md/.json",
    )
    args = parser.parse_args(argv)
    return BenchConfig(
        devices=args.devices,
        growth=tuple(int(n) for n in args.growth.split(",") if n.strip()),
        seed=args.seed,
        spark=not args.no_spark,
        daily=not args.no_daily,
        out=args.out.resolve(),
        step_timeout_s=args.step_timeout,
        only=args.only,
        scale_copies=args.scale,
    )


def main(argv: list[str] | None = None) -> int:
    config = parse_args(argv)
    run = run_benchmark(config)
    report = markdown(run)
    config.out.mkdir(parents=True, exist_ok=True)
    name = f"bench-{config.only}" if config.only else "bench"
    (config.out / f"{name}.md").write_text(report + "\n")
    write_json(run, config.out / f"{name}.json")
    print()
    print(report)
    print(f"\nwritten: {config.out / f'{name}.json'}, {config.out / f'{name}.md'}")
    return 0 if all(r.ok for r in run.results.values()) else 1


if __name__ == "__main__":
    raise SystemExit(main())
