"""Results of many runs: score statistics over seeds (IQM, bootstrap CIs, probability of improvement),
tables and learning curves.

Used by scripts/report.py; the maths lives in :mod:`cmrl.results.stats` as pure functions.
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
from cmrl.results.stats import (
    ScoreStats,
    aggregate_curves,
    bootstrap_ci,
    interquartile_mean,
    iqm_weights,
    probability_of_improvement,
    probability_of_improvement_ci,
    stratified_bootstrap_ci,
    summarize,
)

__all__ = [
    "GroupRow", "ImprovementRow", "ReportSettings", "RunGroup", "RunResult", "ScoreStats", "aggregate_curves",
    "bootstrap_ci", "find_run_dirs", "group_runs", "improvement_rows", "interquartile_mean", "iqm_weights",
    "load_run", "markdown_report", "plot_learning_curves", "probability_of_improvement",
    "probability_of_improvement_ci", "runs_csv", "stratified_bootstrap_ci", "summarize", "summarize_group",
    "text_report",
]
