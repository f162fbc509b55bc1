"""The app's peak memory: every page served once through AppTest in a fresh process over the
store the ALPHA12_* variables point at; prints the peak resident set size in bytes.

Run by bench_views (`python -m bench.app_memory`), in its own process so nothing else the
benchmark loaded counts.
"""

import resource
from pathlib import Path

from streamlit.testing.v1 import AppTest

APP = Path(__file__).resolve().parents[1] / "app.py"
PAGES = ("timeframe", "snapshots", "models", "system")


def main() -> None:
    at = AppTest.from_file(str(APP), default_timeout=300).run()
    for page in PAGES:
        at.switch_page(f"pages/{page}.py").run()
        if at.exception:
            raise SystemExit(f"{page}: {at.exception[0].value}")
    print(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024)  # Linux reports KiB


if __name__ == "__main__":
    main()
