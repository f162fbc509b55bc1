"""`make bench`: run every bench/bench_*.py, print one table, write bench/results.json.

`python -m bench --quick` runs smaller sizes (for a smoke check, not for the figures).
"""

import argparse
import importlib
import json
import pkgutil
import platform
import time
from pathlib import Path

import pandas as pd

HERE = Path(__file__).parent


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--only", help="run only bench modules whose name contains this")
    args = parser.parse_args()
    rows, started = [], time.perf_counter()
    for module in sorted(m.name for m in pkgutil.iter_modules([str(HERE)])):
        if not module.startswith("bench_") or (args.only and args.only not in module):
            continue
        print(f"running {module} ...", flush=True)
        rows += [
            {"bench": module, **r}
            for r in importlib.import_module(f"bench.{module}").run(quick=args.quick)
        ]
    table = pd.DataFrame(rows)
    print(table.to_string(index=False, float_format=lambda v: f"{v:,.4g}"))
    elapsed = time.perf_counter() - started
    print(
        f"\n{len(rows)} rows in {elapsed:.0f} s on {platform.machine()}, "
        f"{platform.python_version()}"
    )
    (HERE / "results.json").write_text(
        json.dumps({"quick": args.quick, "seconds": elapsed, "rows": rows}, indent=2, default=str)
    )


if __name__ == "__main__":
    main()
