"""Results of many runs: tables and learning curves from run directories.

Used by scripts/report.py. The statistics (IQM, bootstrap CIs, probability of improvement) are pure
functions in :mod:`cmrl.results.stats`.
"""
from cmrl.results.report import (
    GroupRow,
    ImprovementRow,
    ReportSettings,
    improvement_rows,
    markdown_report,
    plot_learning_curves,
    runs_csv,
    summarize_group,
    text_report,
)
from cmrl.results.runs import RunGroup, RunResult, find_run_dirs, group_runs, load_run
from cmrl.results.stats import ScoreStats

__all__ = [
    "GroupRow", "ImprovementRow", "ReportSettings", "RunGroup", "RunResult", "ScoreStats", "find_run_dirs",
    "group_runs", "improvement_rows", "load_run", "markdown_report", "plot_learning_curves", "runs_csv",
    "summarize_group", "text_report",
]
