"""Run every ``bench/bench_*.py``: import it and call its ``main(argv)``; exit 1 if any failed."""

from __future__ import annotations

import importlib
import sys
import time
import traceback
from pathlib import Path


def main() -> int:
    root = Path(__file__).resolve().parent
    if str(root.parent / "src") not in sys.path:
        sys.path.insert(0, str(root.parent / "src"))
    failed: list[str] = []
    for path in sorted(root.glob("bench_*.py")):
        name = path.stem
        print(f"== {name}", flush=True)
        start = time.perf_counter()
        try:
            module = importlib.import_module(f"bench.{name}")
            rc = module.main([str(path)])
        except Exception:  # a broken benchmark is reported, the others still run
            traceback.print_exc()
            rc = 1
        print(f"== {name}: {'ok' if not rc else 'FAILED'} in {time.perf_counter() - start:.1f} s\n", flush=True)
        if rc:
            failed.append(name)
    if failed:
        print(f"failed: {', '.join(failed)}")
    return 1 if failed else 0


if __name__ == "__main__":
    raise SystemExit(main())
