"""How fast the CLI answers commands that need no model: `autoencoders --help` and `autoencoders models`.

Each command runs 5 times in a fresh process; the median wall-clock time is reported (target: < 1 s).

    python benchmarks/cli_startup.py
"""

from __future__ import annotations

import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import write_result, write_table  # noqa: E402


def main() -> None:
    executable = shutil.which("autoencoders")
    command = [executable] if executable else [sys.executable, "-m", "autoencoders.cli"]
    medians = {}
    for arguments in (["--help"], ["models"], ["datasets"]):
        times = []
        for _ in range(5):
            started = time.perf_counter()
            subprocess.run(command + arguments, check=True, capture_output=True)
            times.append(time.perf_counter() - started)
        medians[" ".join(arguments)] = statistics.median(times)
    write_result("cli_startup", {"median_seconds": medians, "command": command[0]})
    rows = "\n".join(f"| `autoencoders {name}` | {seconds:.2f} |" for name, seconds in medians.items())
    write_table(
        "CLI start-up (benchmarks/cli_startup.py)",
        f"Median of 5 fresh processes each (target < 1 s for `--help` and `models`).\n\n| command | seconds |\n| --- | ---: |\n{rows}",
    )
    print(medians)


if __name__ == "__main__":
    main()
