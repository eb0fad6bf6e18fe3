"""Results tables (console and Markdown) and learning-curve plots from groups of runs.

Protocol of every table: the score of a run is the normalised score of its FINAL checkpoint
(evaluated after the last training step); per experiment the table gives the mean +- sample std over
seeds and the interquartile mean with a percentile bootstrap confidence interval over seeds. The
best evaluation seen during training is an optimistic, model-selected figure (it picks the best of
several evaluations in the test environment) and appears only in its own, labelled column.
"""
from __future__ import annotations

import math
import re
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Optional

import numpy as np

from cmrl.results.runs import RunGroup, RunResult
from cmrl.results.stats import (
    ScoreStats,
    aggregate_curves,
    interquartile_mean,
    probability_of_improvement,
    probability_of_improvement_ci,
    stratified_bootstrap_ci,
    summarize,
)

CONSISTENCY_PREFIX = "consistency"
"""Algorithms whose name starts with this are cmrl's consistency agents; the rest are baselines."""


@dataclass(frozen=True)
class ReportSettings:
    n_resamples: int = 10_000  # bootstrap resamples
    confidence: float = 0.95  # confidence level of the bootstrap interval
    seed: int = 0  # bootstrap random seed (the tables are reproducible)


@dataclass
class GroupRow:
    """One table row: an experiment (dataset, algorithm, variant) summarised over its seeds."""

    group: RunGroup
    metric: str  # "normalised score" or "return" (when the dataset has no reference scores)
    final: ScoreStats
    best: Optional[ScoreStats]  # best evaluation during training (normalised only); None without refs

    @property
    def dataset_normalized(self) -> Optional[float]:
        values = {r.dataset_normalized for r in self.group.runs if r.dataset_normalized is not None}
        return values.pop() if len(values) == 1 else None


def final_scores(group: RunGroup) -> tuple[str, np.ndarray]:
    """The metric name and the final-checkpoint score of every run of the group."""
    if group.has_normalized:
        return "normalised score", np.array([r.final_normalized for r in group.runs], dtype=np.float64)
    return "return", np.array([r.final_return_mean for r in group.runs], dtype=np.float64)


def summarize_group(group: RunGroup, settings: ReportSettings = ReportSettings()) -> GroupRow:
    metric, scores = final_scores(group)
    best = None
    if group.has_normalized and all(r.best_normalized is not None for r in group.runs):
        best = summarize([float(r.best_normalized) for r in group.runs if r.best_normalized is not None],
                         settings.n_resamples, settings.confidence,
                         settings.seed)
    return GroupRow(group, metric, summarize(scores, settings.n_resamples, settings.confidence, settings.seed), best)


# --- formatting -------------------------------------------------------------------------------------
def _num(x: float, digits: int = 1) -> str:
    return "n/a" if x is None or not math.isfinite(x) else f"{x:.{digits}f}"


def _mean_std(s: ScoreStats) -> str:
    return _num(s.mean) if s.n < 2 else f"{_num(s.mean)} ± {_num(s.std)}"


def _iqm_ci(s: ScoreStats) -> str:
    return f"{_num(s.iqm)} [{_num(s.iqm_ci[0])}, {_num(s.iqm_ci[1])}]"


def _ints(values: Sequence[int]) -> str:
    return ",".join(str(v) for v in values)


def _seeds(group: RunGroup) -> str:
    seeds = group.seeds
    text = f"{len(seeds)} ({_ints(seeds)})"
    if len(set(seeds)) < len(seeds):
        text += " DUPLICATE SEEDS"
    return text


def row_cells(row: GroupRow, with_variant: bool) -> list[str]:
    g = row.group
    cells = [g.algo] + ([g.variant or "-"] if with_variant else [])
    cells += [_ints(g.steps), _seeds(g), _ints(g.eval_episodes), _mean_std(row.final), _iqm_ci(row.final)]
    cells.append(_mean_std(row.best) if row.best is not None else "n/a")
    return cells


def header_cells(metric: str, with_variant: bool, confidence: float) -> list[str]:
    unit = "normalised score" if metric == "normalised score" else "return"
    head = ["algorithm"] + (["variant"] if with_variant else [])
    return head + ["steps", "seeds", "eval episodes", f"final {unit}: mean ± std",
                   f"final {unit}: IQM [{confidence:.0%} CI]", "best during training (optimistic): mean ± std"]


def _datasets(rows: list[GroupRow]) -> list[tuple[str, str]]:
    return list(dict.fromkeys((r.group.dataset, r.group.env_id) for r in rows))


def _dataset_title(dataset: str, env_id: str, rows: list[GroupRow]) -> str:
    behaviour = {round(r.dataset_normalized, 6) for r in rows if r.dataset_normalized is not None}
    text = f"{dataset} (evaluated in {env_id})"
    if len(behaviour) == 1:
        text += f"; behaviour data: normalised score {_num(behaviour.pop())}"
    return text


def _metric(rows: list[GroupRow]) -> str:
    return "normalised score" if all(r.metric == "normalised score" for r in rows) else "return"


def protocol_lines(settings: ReportSettings) -> list[str]:
    return [
        "Score of a run: D4RL-style normalised score 100 * (R - ref_min) / (ref_max - ref_min) of the final "
        "checkpoint (the policy after the last training step), mean over the evaluation episodes; the raw "
        "return where the dataset has no reference scores.",
        "mean ± std: over seeds, sample std (ddof=1). IQM: interquartile mean over seeds (quartile-boundary "
        f"seeds weighted fractionally); [CI]: {settings.confidence:.0%} percentile bootstrap over seeds, "
        f"{settings.n_resamples} resamples, bootstrap seed {settings.seed}. With 3-5 seeds the interval is crude.",
        "best during training: the best periodic evaluation of each run, averaged over seeds. It selects the "
        "model on the test environment and overstates performance: never compare it with final scores.",
        "P(X > Y), the probability of improvement (rliable): the chance that a run of X beats a run of Y on the "
        "same dataset, averaged over the datasets both ran on (ties count 1/2); X is the consistency agent with "
        "the highest IQM over all its datasets; CI by a bootstrap of the runs within each dataset.",
    ]


def format_text_table(cells: list[list[str]]) -> str:
    widths = [max(len(row[i]) for row in cells) for i in range(len(cells[0]))]
    lines = ["  ".join(c.ljust(w) for c, w in zip(row, widths)).rstrip() for row in cells]
    lines.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(lines)


def format_markdown_table(cells: list[list[str]]) -> str:
    def line(row: list[str]) -> str:
        return "| " + " | ".join(c.replace("|", "\\|") for c in row) + " |"

    return "\n".join([line(cells[0]), "|" + "|".join("---" for _ in cells[0]) + "|", *map(line, cells[1:])])


def _tables(rows: list[GroupRow], settings: ReportSettings) -> list[tuple[str, list[list[str]]]]:
    out = []
    for dataset, env_id in _datasets(rows):
        mine = [r for r in rows if (r.group.dataset, r.group.env_id) == (dataset, env_id)]
        with_variant = any(r.group.variant for r in mine)
        cells = [header_cells(_metric(mine), with_variant, settings.confidence)]
        cells += [row_cells(r, with_variant) for r in mine]
        out.append((_dataset_title(dataset, env_id, mine), cells))
    return out


@dataclass
class AggregateRow:
    """One algorithm (and variant) over every dataset it was run on: IQM of all its runs' final scores."""

    label: str
    datasets: int
    runs: int
    iqm: float
    iqm_ci: tuple[float, float]
    mean: float


def aggregate_rows(rows: list[GroupRow], settings: ReportSettings = ReportSettings()) -> list[AggregateRow]:
    """Per algorithm (+ variant) across datasets, for normalised scores only: the IQM of all runs pooled,
    with a stratified bootstrap CI (seeds resampled within each dataset), as in rliable. Only
    algorithms run on the same set of datasets are comparable; this lists each with its dataset count."""
    by_label: dict[str, list[GroupRow]] = {}
    for row in rows:
        if row.metric == "normalised score":
            by_label.setdefault(row.group.label, []).append(row)
    out = []
    for label, mine in by_label.items():
        groups = [final_scores(r.group)[1] for r in mine]
        pooled = np.concatenate(groups)
        ci = stratified_bootstrap_ci(groups, "iqm", settings.n_resamples, settings.confidence, settings.seed)
        out.append(AggregateRow(label, len(mine), int(pooled.size), interquartile_mean(pooled), ci,
                                float(pooled.mean())))
    return out


def _aggregate_cells(aggregates: list[AggregateRow], confidence: float) -> list[list[str]]:
    cells = [["algorithm", "datasets", "runs", "mean final normalised score",
              f"IQM final normalised score [{confidence:.0%} CI, stratified bootstrap]"]]
    for a in aggregates:
        cells.append([a.label, str(a.datasets), str(a.runs), _num(a.mean),
                      f"{_num(a.iqm)} [{_num(a.iqm_ci[0])}, {_num(a.iqm_ci[1])}]"])
    return cells


@dataclass
class ImprovementRow:
    """P(best consistency agent > baseline) over the datasets both were run on (rliable)."""

    best: str  # label of the consistency agent with the highest aggregate IQM
    baseline: str
    datasets: int
    probability: float
    ci: tuple[float, float]


def improvement_rows(rows: list[GroupRow], settings: ReportSettings = ReportSettings()) -> list[ImprovementRow]:
    """The probability of improvement of the best consistency agent (by aggregate IQM over its
    datasets) over every baseline, on the datasets both were run on; normalised scores only. Empty
    when the runs hold no consistency agent or no baseline."""
    by_label: dict[str, dict[tuple[str, str], np.ndarray]] = {}
    algo_of: dict[str, str] = {}
    for row in rows:
        if row.metric == "normalised score":
            by_label.setdefault(row.group.label, {})[row.group.dataset, row.group.env_id] = final_scores(row.group)[1]
            algo_of[row.group.label] = row.group.algo
    ours = [label for label in by_label if algo_of[label].startswith(CONSISTENCY_PREFIX)]
    baselines = [label for label in by_label if not algo_of[label].startswith(CONSISTENCY_PREFIX)]
    if not ours or not baselines:
        return []
    best = max(ours, key=lambda label: interquartile_mean(np.concatenate(list(by_label[label].values()))))
    out = []
    for baseline in baselines:
        shared = sorted(set(by_label[best]) & set(by_label[baseline]))
        if not shared:
            continue
        x = [by_label[best][d] for d in shared]
        y = [by_label[baseline][d] for d in shared]
        out.append(ImprovementRow(best, baseline, len(shared), probability_of_improvement(x, y),
                                  probability_of_improvement_ci(x, y, settings.n_resamples, settings.confidence,
                                                                settings.seed)))
    return out


def _improvement_cells(improvements: list[ImprovementRow], confidence: float) -> list[list[str]]:
    cells = [["consistency agent", "baseline", "datasets",
              f"P(consistency agent > baseline) [{confidence:.0%} CI, stratified bootstrap]"]]
    for r in improvements:
        cells.append([r.best, r.baseline, str(r.datasets), f"{r.probability:.2f} [{r.ci[0]:.2f}, {r.ci[1]:.2f}]"])
    return cells


def text_report(rows: list[GroupRow], settings: ReportSettings = ReportSettings()) -> str:
    """Tables for the console: one per dataset, rows per algorithm, then the protocol."""
    parts = []
    for title, cells in _tables(rows, settings):
        parts += [f"== {title}", format_text_table(cells), ""]
    aggregates = aggregate_rows(rows, settings)
    if aggregates and len(_datasets(rows)) > 1:
        table = format_text_table(_aggregate_cells(aggregates, settings.confidence))
        parts += ["== all datasets (final checkpoints)", table, ""]
    improvements = improvement_rows(rows, settings)
    if improvements:
        parts += ["== probability of improvement (final checkpoints)",
                  format_text_table(_improvement_cells(improvements, settings.confidence)), ""]
    parts += ["Protocol:", *(f"- {line}" for line in protocol_lines(settings))]
    return "\n".join(parts)


def markdown_report(rows: list[GroupRow], settings: ReportSettings = ReportSettings(),
                    plots: Optional[dict[tuple[str, str], str]] = None, skipped: Sequence[Path] = ()) -> str:
    """The same tables as Markdown, with the plots linked and the unfinished runs listed."""
    parts = ["# Results", ""]
    for (dataset, env_id), (title, cells) in zip(_datasets(rows), _tables(rows, settings)):
        parts += [f"## {title}", "", format_markdown_table(cells), ""]
        if plots and (dataset, env_id) in plots:
            parts += [f"![learning curves on {dataset}]({plots[dataset, env_id]})", ""]
    aggregates = aggregate_rows(rows, settings)
    if aggregates and len(_datasets(rows)) > 1:
        parts += ["## All datasets (final checkpoints)", "",
                  format_markdown_table(_aggregate_cells(aggregates, settings.confidence)), ""]
    improvements = improvement_rows(rows, settings)
    if improvements:
        parts += ["## Probability of improvement (final checkpoints)", "",
                  format_markdown_table(_improvement_cells(improvements, settings.confidence)), ""]
    parts += ["## Protocol", "", *(f"- {line}" for line in protocol_lines(settings)), ""]
    runs = [r for row in rows for r in row.group.runs]
    parts += [f"Runs: {len(runs)}; total training wall time {sum(r.wall_time_s for r in runs) / 3600:.2f} h "
              "(summed over runs)."]
    if skipped:
        parts += ["", f"Unfinished or failed runs, not scored ({len(skipped)}):", ""]
        parts += [f"- `{p}`" for p in skipped]
    return "\n".join(parts) + "\n"


def runs_csv(rows: list[GroupRow]) -> str:
    """Every scored run, one line each, for other tools."""
    import csv
    import io

    buf = io.StringIO()
    writer = csv.writer(buf)
    writer.writerow(["dataset", "env_id", "algo", "variant", "seed", "steps", "eval_episodes", "final_normalized",
                     "final_return_mean", "best_normalized", "dataset_normalized", "wall_time_s", "run_dir"])
    for row in rows:
        g = row.group
        for r in g.runs:
            writer.writerow([g.dataset, g.env_id, g.algo, g.variant, r.seed, r.steps, r.eval_episodes,
                             r.final_normalized, r.final_return_mean, r.best_normalized, r.dataset_normalized,
                             r.wall_time_s, str(r.run_dir)])
    return buf.getvalue()


# --- plots ------------------------------------------------------------------------------------------
def slug(text: str) -> str:
    """A file-name-safe version of a dataset name: data/bench/hopper-medium.hdf5 -> data_bench_hopper-medium.hdf5."""
    return re.sub(r"[^A-Za-z0-9._-]+", "_", text).strip("_") or "dataset"


def _curve(run: RunResult, normalized: bool) -> tuple[np.ndarray, np.ndarray]:
    return run.curve_steps, run.curve_normalized if normalized else run.curve_return


def plot_learning_curves(rows: list[GroupRow], out_dir: Path) -> dict[tuple[str, str], str]:
    """One PNG per dataset: per algorithm (+ variant) the mean evaluation score over seeds against
    training steps, with a band of ± one sample std over seeds; the behaviour data's score dashed.
    Returns {(dataset, env_id): file name}."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    out_dir.mkdir(parents=True, exist_ok=True)
    written: dict[tuple[str, str], str] = {}
    names: Counter[str] = Counter()
    for dataset, env_id in _datasets(rows):
        mine = [r for r in rows if (r.group.dataset, r.group.env_id) == (dataset, env_id)]
        normalized = _metric(mine) == "normalised score"
        fig, ax = plt.subplots(figsize=(6.4, 4.2))
        plotted = False
        for row in mine:
            curves = [_curve(r, normalized) for r in row.group.runs]
            grid, mean, std = aggregate_curves([c[0] for c in curves], [c[1] for c in curves])
            if grid.size == 0:
                continue
            n = len(row.group.runs)
            line, = ax.plot(grid, mean, marker="o" if grid.size < 12 else None, markersize=3,
                            label=f"{row.group.label} (n={n})")
            if n > 1:
                ax.fill_between(grid, mean - std, mean + std, color=line.get_color(), alpha=0.2, linewidth=0)
            plotted = True
        behaviour = mine[0].dataset_normalized if normalized else None
        if behaviour is not None:
            ax.axhline(behaviour, color="grey", linestyle="--", linewidth=1, label="behaviour data")
        ax.set_xlabel("training step")
        ax.set_ylabel(("normalised score" if normalized else "return") + " (mean ± std over seeds)")
        ax.set_title(f"{dataset} ({env_id})", fontsize=10)
        ax.grid(alpha=0.3)
        if plotted or behaviour is not None:
            ax.legend(fontsize=8)
        fig.tight_layout()
        base = slug(f"{dataset}-{env_id}" if sum(d == dataset for d, _ in _datasets(rows)) > 1 else dataset)
        names[base] += 1
        name = f"curves_{base}.png" if names[base] == 1 else f"curves_{base}_{names[base]}.png"
        fig.savefig(out_dir / name, dpi=120)
        plt.close(fig)
        written[dataset, env_id] = name
    return written
