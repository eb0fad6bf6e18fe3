#!/usr/bin/env python
"""Gather finished runs into results tables and learning-curve plots.

    python scripts/report.py runs/bench_d4rl_style/20261201-120000            # a sweep directory
    python scripts/report.py runs/ --out reports/all                          # every run under runs/

Each argument is a run directory (holding summary.json) or any folder above run directories. Runs
are grouped by dataset file, evaluation environment and algorithm, and further by any config key
whose value differs between runs that are not just other seeds (e.g. agent.eta in a sweep over it).

Printed, and written to OUT/results.md: one table per dataset, one row per algorithm: steps, seeds,
final-checkpoint normalised score (mean ± std over seeds; IQM with a 95% percentile bootstrap CI
over seeds), and, in a separate labelled column, the best evaluation during training. Also written:
OUT/curves_<dataset>.png (mean ± std over seeds of the periodic evaluations) and OUT/runs.csv (one
line per run). Runs without summary.json (failed or still running) are listed and left out.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

from cmrl.errors import user_errors
from cmrl.results import (
    ReportSettings,
    find_run_dirs,
    group_runs,
    load_run,
    markdown_report,
    plot_learning_curves,
    runs_csv,
    summarize_group,
    text_report,
)


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("run_dirs", nargs="+", metavar="RUN_DIR", help="run directories or folders above them")
    ap.add_argument("--out", default=None,
                    help="output folder for results.md, runs.csv and the plots (default: the first RUN_DIR "
                         "when it is a folder of runs, else report/ beside it)")
    ap.add_argument("--bootstrap", type=int, default=10_000, help="bootstrap resamples (default 10000)")
    ap.add_argument("--confidence", type=float, default=0.95, help="confidence level (default 0.95)")
    ap.add_argument("--seed", type=int, default=0, help="bootstrap random seed (default 0)")
    ap.add_argument("--no-plots", action="store_true", help="skip the learning-curve PNGs")
    return ap.parse_args(argv)


def default_out(first: Path) -> Path:
    """Beside the runs: in the sweep folder given, or next to a single run directory."""
    if (first / "summary.json").is_file():
        return first.parent / f"report_{first.name}"
    return first / "report"


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if args.bootstrap < 1 or not 0.0 < args.confidence < 1.0:
        print("report: error: --bootstrap must be >= 1 and --confidence in (0, 1)", file=sys.stderr)
        return 2
    try:
        finished, unfinished = find_run_dirs(args.run_dirs)
    except FileNotFoundError as err:
        print(f"report: error: {err}", file=sys.stderr)
        return 2
    runs, unreadable = [], []
    for run_dir in finished:
        try:
            runs.append(load_run(run_dir))
        except ValueError as err:
            print(f"report: warning: skipping {run_dir}: {err}", file=sys.stderr)
            unreadable.append(run_dir)
    skipped = unfinished + unreadable
    if not runs:
        print(f"report: error: no finished runs (directories with summary.json) under {' '.join(args.run_dirs)}"
              + (f"; {len(unfinished)} unfinished or failed run(s) found" if unfinished else ""), file=sys.stderr)
        return 1

    settings = ReportSettings(n_resamples=args.bootstrap, confidence=args.confidence, seed=args.seed)
    rows = [summarize_group(group, settings) for group in group_runs(runs)]
    print(text_report(rows, settings))
    if skipped:
        print(f"\n{len(skipped)} unfinished or failed run(s) not scored:")
        for path in skipped:
            print(f"  {path}")

    out = Path(args.out) if args.out else default_out(Path(args.run_dirs[0]))
    out.mkdir(parents=True, exist_ok=True)
    plots = {} if args.no_plots else plot_learning_curves(rows, out)
    (out / "results.md").write_text(markdown_report(rows, settings, plots, skipped), encoding="utf-8")
    (out / "runs.csv").write_text(runs_csv(rows), encoding="utf-8")
    print(f"\nwrote {out / 'results.md'}, {out / 'runs.csv'}"
          + (f" and {len(plots)} plot(s): " + ", ".join(str(out / p) for p in plots.values()) if plots else ""))
    return 0


if __name__ == "__main__":
    with user_errors("report", also=(ValueError, OSError)):
        sys.exit(main())
