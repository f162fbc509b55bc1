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
    print(peak_rss())


def peak_rss() -> int:
    """Bytes. VmHWM, not ru_maxrss: Linux carries ru_maxrss over fork and exec, so it would
    report the benchmark process that started this one."""
    status = Path("/proc/self/status")
    if status.exists():
        line = next(x for x in status.read_text().splitlines() if x.startswith("VmHWM:"))
        return int(line.split()[1]) * 1024
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024  # KiB on Linux, else approx


if __name__ == "__main__":
    main()
