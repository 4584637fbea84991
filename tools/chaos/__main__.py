"""``make chaos``: run the fault cases and print case, outcome and readings lost.

python -m tools.chaos [--only CASE ...] [--keep]
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import time
from pathlib import Path

from tools.chaos.cases import CASES
from tools.chaos.harness import Home, Outcome


def run(names: list[str], keep: bool) -> list[Outcome]:
    outcomes = []
    for name in names:
        home = Home()
        began = time.monotonic()
        try:
            outcome = CASES[name](home)
        except Exception as exc:  # noqa: BLE001 - a case that crashes is a failed case
            outcome = Outcome(name, False, -1, f"case crashed: {type(exc).__name__}: {exc}")
        outcome.case, outcome.seconds = name, time.monotonic() - began
        outcomes.append(outcome)
        print(f"  {'PASS' if outcome.passed else 'FAIL'}  {name}  ({outcome.seconds:.0f} s)")
        if not keep:
            shutil.rmtree(home.root, ignore_errors=True)
        else:
            print(f"        home kept: {home.root}")
    return outcomes


def table(outcomes: list[Outcome]) -> str:
    width = max(len(o.case) for o in outcomes)
    lines = [f"{'case':<{width}}  outcome  rows lost  evidence", "-" * (width + 60)]
    for o in outcomes:
        lost = "?" if o.rows_lost < 0 else str(o.rows_lost)
        verdict = "PASS" if o.passed and o.rows_lost == 0 else "FAIL"
        lines.append(f"{o.case:<{width}}  {verdict:<7}  {lost:>9}  {o.detail}")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--only", nargs="*", choices=sorted(CASES), help="cases to run")
    parser.add_argument("--keep", action="store_true", help="keep each case's home")
    parser.add_argument("--out", type=Path, default=Path("chaos-results"), help="results folder")
    args = parser.parse_args(argv)
    outcomes = run(args.only or list(CASES), args.keep)
    print()
    print(table(outcomes))
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "chaos.json").write_text(json.dumps([o.__dict__ for o in outcomes], indent=2))
    return 0 if all(o.passed and o.rows_lost == 0 for o in outcomes) else 1


if __name__ == "__main__":
    sys.exit(main())
