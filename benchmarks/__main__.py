"""`python -m benchmarks`: the speed table of issue 7 (see benchmarks/README.md).

    python -m benchmarks                               # every section, 30 warm runs
    python -m benchmarks --section e2e --section faces --runs 50
    python -m benchmarks --section video --section live   # issue 16: video and webcam frame rates
    python -m benchmarks --stand-in                    # untrained same-shape models, even if trained ones exist

Peer accuracy on held-out data is `python -m benchmarks.peers` (in .venv-peers).
"""
from __future__ import annotations

import argparse
import os
import sys

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")


def main(argv: list[str] | None = None) -> int:
    from .common import print_table
    from .perf import SECTIONS, run
    from .video import VIDEO_SECTIONS

    every = (*SECTIONS, *VIDEO_SECTIONS)

    parser = argparse.ArgumentParser(prog="python -m benchmarks", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--section", dest="sections", action="append", choices=every,
                        help=f"run only these (repeatable); default: all of {', '.join(every)}")
    parser.add_argument("--runs", type=int, default=30, help="warm runs per timing (default 30)")
    parser.add_argument("--threads", type=int, default=None,
                        help="torch threads in this process and the peers' (default: torch's, one per core)")
    parser.add_argument("--stand-in", action="store_true",
                        help="untrained models of the manifest's backbone/size instead of models/<task> "
                             "(automatic for a task whose model is missing)")
    parser.add_argument("--no-peers", dest="peers", action="store_false",
                        help="skip the peers' pipelines (they need .venv-peers)")
    parser.add_argument("--photos", type=int, default=50, help="photos in the throughput folder (default 50)")
    args = parser.parse_args(argv)
    if args.runs < 1:
        parser.error("--runs must be at least 1")
    rows = run(args.sections or list(every), runs=args.runs, threads=args.threads,
               stand_in=args.stand_in, peers=args.peers, photos=args.photos, functions=VIDEO_SECTIONS)
    print_table(rows)
    return 1 if any(row.measure == "failed" for row in rows) else 0


if __name__ == "__main__":
    sys.exit(main())
