"""scripts/report.py and cmrl.results: the statistics, run discovery and grouping, tables and plots,
all on synthetic run directories (no training)."""
from __future__ import annotations

import json
import math
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import yaml

from cmrl.results import (
    ReportSettings,
    find_run_dirs,
    group_runs,
    improvement_rows,
    load_run,
    markdown_report,
    summarize_group,
    text_report,
)
from cmrl.results.stats import (
    aggregate_curves,
    bootstrap_ci,
    interquartile_mean,
    iqm_weights,
    probability_of_improvement,
    probability_of_improvement_ci,
    stratified_bootstrap_ci,
    summarize,
)

ROOT = Path(__file__).resolve().parents[1]
REPORT = ROOT / "scripts" / "report.py"


# --- statistics ---------------------------------------------------------------------------------------
def test_iqm_weights_sum_to_one_and_trim_a_quarter_each_side():
    for n in range(1, 13):
        w = iqm_weights(n)
        assert w.shape == (n,) and w.sum() == pytest.approx(1.0)
        assert np.all(w >= 0) and np.allclose(w, w[::-1])  # symmetric
    assert np.allclose(iqm_weights(4), [0, 0.5, 0.5, 0])
    assert np.allclose(iqm_weights(3), np.array([0.25, 1, 0.25]) / 1.5)
    assert np.allclose(iqm_weights(5), np.array([0, 0.75, 1, 0.75, 0]) / 2.5)


def test_iqm_matches_trimmed_mean_when_n_is_a_multiple_of_four():
    rng = np.random.default_rng(0)
    for n in (4, 8, 12, 40):
        x = rng.normal(size=n)
        s = np.sort(x)
        assert interquartile_mean(x) == pytest.approx(s[n // 4: n - n // 4].mean())


def test_iqm_is_robust_to_one_outlier_and_order_invariant():
    x = [10.0, 11.0, 12.0, 13.0, 1000.0]
    assert interquartile_mean(x) == pytest.approx((0.75 * 11 + 12 + 0.75 * 13) / 2.5)
    assert interquartile_mean(x[::-1]) == interquartile_mean(x)
    assert interquartile_mean([7.0]) == 7.0
    assert interquartile_mean([2.0, 4.0]) == 3.0


def test_statistics_reject_empty_and_non_finite_scores():
    for bad in ([], [1.0, math.nan], [math.inf]):
        with pytest.raises(ValueError):
            interquartile_mean(bad)
    with pytest.raises(ValueError):
        bootstrap_ci([1.0, 2.0], statistic="max")
    with pytest.raises(ValueError):
        bootstrap_ci([1.0, 2.0], confidence=1.0)


def test_bootstrap_ci_is_reproducible_contains_the_estimate_and_shrinks_with_more_seeds():
    rng = np.random.default_rng(1)
    small, large = rng.normal(50, 10, size=5), rng.normal(50, 10, size=200)
    lo, hi = bootstrap_ci(small, "iqm", 2000, 0.95, seed=3)
    assert (lo, hi) == bootstrap_ci(small, "iqm", 2000, 0.95, seed=3)
    assert lo <= interquartile_mean(small) <= hi
    lo2, hi2 = bootstrap_ci(large, "iqm", 2000, 0.95, seed=3)
    assert hi2 - lo2 < hi - lo
    assert lo2 < 50 < hi2
    assert bootstrap_ci([4.0], "iqm") == (4.0, 4.0)
    m_lo, m_hi = bootstrap_ci(small, "mean", 2000)
    assert m_lo <= small.mean() <= m_hi


def test_bootstrap_mean_ci_has_roughly_nominal_coverage():
    rng = np.random.default_rng(2)
    hits = 0
    for _ in range(200):
        x = rng.normal(0.0, 1.0, size=30)
        lo, hi = bootstrap_ci(x, "mean", 1000, 0.9, seed=int(rng.integers(1 << 30)))
        hits += lo <= 0.0 <= hi
    assert 0.8 <= hits / 200 <= 0.97


def test_stratified_bootstrap_keeps_group_sizes():
    a, b = np.array([0.0, 0.0, 0.0]), np.array([100.0, 100.0, 100.0])
    # resampling within groups keeps half the pooled scores at 0 and half at 100: degenerate interval
    assert stratified_bootstrap_ci([a, b], "mean", 500) == (50.0, 50.0)
    lo, hi = bootstrap_ci(np.concatenate([a, b]), "mean", 500)
    assert lo < 50 < hi  # an unstratified bootstrap mixes the groups


def test_probability_of_improvement_by_hand():
    # task 1: x = [1, 3], y = [2, 3]: pairs (1,2) 0, (1,3) 0, (3,2) 1, (3,3) 1/2 -> 1.5 / 4 = 0.375
    # task 2: x = [5], y = [4, 6, 7]: 1, 0, 0 -> 1/3; the mean over tasks: (0.375 + 1/3) / 2
    x, y = [[1.0, 3.0], [5.0]], [[2.0, 3.0], [4.0, 6.0, 7.0]]
    assert probability_of_improvement(x, y) == pytest.approx((0.375 + 1.0 / 3.0) / 2)
    assert probability_of_improvement(y, x) == pytest.approx(1.0 - (0.375 + 1.0 / 3.0) / 2)  # P(X>Y) + P(Y>X) = 1
    assert probability_of_improvement([[9.0, 8.0]], [[1.0, 2.0]]) == 1.0
    # X always better: a degenerate interval at 1; resampling within tasks keeps it there
    assert probability_of_improvement_ci([[9.0, 8.0], [7.0]], [[1.0, 2.0], [3.0]], 200) == (1.0, 1.0)
    lo, hi = probability_of_improvement_ci(x, y, 2000)
    assert 0.0 <= lo < probability_of_improvement(x, y) < hi <= 1.0
    with pytest.raises(ValueError, match="same number"):
        probability_of_improvement([[1.0]], [[1.0], [2.0]])


def test_report_gives_the_best_consistency_agent_s_probability_of_improvement(tmp_path: Path):
    """The consistency agent with the higher IQM over its datasets (AC) is compared with each baseline
    on the datasets both ran on; the text and Markdown reports print the table."""
    runs = []
    for d, dataset in enumerate(("a.hdf5", "b.hdf5")):
        for seed in range(3):
            for algo, final in (("consistency_ac", 60.0 + seed), ("consistency_bc", 30.0), ("td3_bc", 50.0 + 20 * d)):
                runs.append(load_run(make_run(tmp_path / dataset / algo, f"s{seed}", dataset=dataset, algo=algo,
                                              seed=seed, final=final)))
    rows = [summarize_group(g, ReportSettings(n_resamples=200)) for g in group_runs(runs)]
    [row] = improvement_rows(rows, ReportSettings(n_resamples=200))
    assert (row.best, row.baseline, row.datasets) == ("consistency_ac", "td3_bc", 2)
    assert row.probability == pytest.approx(0.5)  # AC 60-62 beats TD3+BC's 50 on a, loses to its 70 on b
    assert "P(consistency agent > baseline)" in text_report(rows, ReportSettings(n_resamples=200))
    assert "Probability of improvement" in markdown_report(rows, ReportSettings(n_resamples=200))
    assert improvement_rows([r for r in rows if r.group.algo != "td3_bc"]) == []


def test_summarize_uses_the_sample_std():
    s = summarize([1.0, 2.0, 3.0, 4.0], n_resamples=100)
    assert s.n == 4 and s.mean == 2.5 and s.std == pytest.approx(np.std([1, 2, 3, 4], ddof=1))
    assert s.iqm == 2.5 and s.min == 1.0 and s.max == 4.0
    assert math.isnan(summarize([5.0], n_resamples=10).std)


def test_aggregate_curves_interpolates_onto_the_common_range():
    grid, mean, std = aggregate_curves([np.array([0, 10, 20]), np.array([5, 15, 25])],
                                       [np.array([0.0, 10.0, 20.0]), np.array([0.0, 10.0, 20.0])])
    assert grid.tolist() == [5, 10, 15, 20]
    # run 1 is y = x on [0, 20], run 2 is y = x - 5 on [5, 25]
    assert np.allclose(mean, [(5 + 0) / 2, (10 + 5) / 2, (15 + 10) / 2, (20 + 15) / 2])
    assert np.allclose(std, np.std([[5, 0], [10, 5], [15, 10], [20, 15]], axis=1, ddof=1))
    grid, mean, std = aggregate_curves([np.array([3, 1, 2])], [np.array([3.0, 1.0, math.nan])])
    assert grid.tolist() == [1, 3] and mean.tolist() == [1.0, 3.0] and std.tolist() == [0.0, 0.0]
    assert aggregate_curves([np.array([0, 1]), np.array([5, 6])], [np.zeros(2), np.zeros(2)])[0].size == 0


# --- synthetic run directories --------------------------------------------------------------------------
def make_run(root: Path, name: str, *, dataset="data/bench/hopper-medium.hdf5", env_id="Hopper-v5",
             algo="consistency_ac", seed=0, steps=1000, final=50.0, best=None, curve=None, eta=1.0,
             refs=True, summary=True, behaviour=40.0, data_return=1200.0, fingerprint=None) -> Path:
    """A run directory as scripts/train.py writes it: config.yaml, metrics.jsonl, summary.json."""
    run = root / name
    run.mkdir(parents=True)
    config = {"agent": {"algo": algo, "eta": eta, "hidden_dims": [256, 256]},
              "dataset": {"source": "d4rl", "name": "custom", "path": dataset},
              "logger": {"mode": "disabled", "group": f"g{seed}"}, "seed": seed, "steps": steps, "threads": 1}
    (run / "config.yaml").write_text(yaml.safe_dump(config))
    curve = curve if curve is not None else [(steps // 2, final - 10.0), (steps, final)]
    with open(run / "metrics.jsonl", "w") as f:
        f.write(json.dumps({"step": 0, "dataset/mean_return": 100.0}) + "\n")
        for step, score in curve:
            f.write(json.dumps({"step": step, "train/actor_loss": 0.1}) + "\n")
            record = {"step": step, "eval/return_mean": score * 30.0, "eval/return_std": 1.0}
            if refs:
                record["eval/normalized_mean"] = score
            f.write(json.dumps(record) + "\n")
    if summary:
        best = best if best is not None else max(s for _, s in curve)
        (run / "summary.json").write_text(json.dumps({
            "run_dir": str(run), "dataset": dataset, "env_id": env_id, "algo": algo, "seed": seed, "steps": steps,
            "wall_time_s": 12.5, "final_return_mean": final * 30.0, "final_return_std": 3.0,
            "final_normalized": final if refs else None, "final_normalized_std": 1.0 if refs else None,
            "best_normalized": best if refs else None, "dataset_normalized": behaviour if refs else None,
            "dataset_mean_return": data_return, "eval_episodes": 10}
            | ({} if fingerprint is None else {"dataset_fingerprint": fingerprint})))
    return run


@pytest.fixture
def sweep(tmp_path: Path) -> Path:
    """A sweep folder: 2 datasets x 2 algorithms x 3 seeds, two failed runs, one run still going."""
    root = tmp_path / "sweep"
    i = 0
    for dataset, env_id in (("data/bench/hopper-medium.hdf5", "Hopper-v5"),
                            ("data/bench/halfcheetah-mixed.hdf5", "HalfCheetah-v5")):
        for algo, base in (("consistency_ac", 60.0), ("consistency_bc", 40.0)):
            for seed in range(3):
                make_run(root, f"{i}_job", dataset=dataset, env_id=env_id, algo=algo, seed=seed,
                         final=base + seed, best=base + seed + 20.0, eta=1.0 if algo == "consistency_ac" else 0.0)
                i += 1
    make_run(root, "90_failed", seed=7, summary=False)
    (root / "91_running").mkdir()
    (root / "91_running" / "metrics.jsonl").write_text('{"step": 0}\n')
    (root / "92_bad_config" / ".hydra").mkdir(parents=True)  # a Hydra job that failed before training
    (root / "92_bad_config" / ".hydra" / "config.yaml").write_text("seed: 0\n")
    (root / "multirun.yaml").write_text("hydra: {}\n")
    return root


def test_find_run_dirs_separates_finished_from_unfinished(sweep: Path):
    finished, unfinished = find_run_dirs([sweep])
    assert len(finished) == 12
    assert [p.name for p in unfinished] == ["90_failed", "91_running", "92_bad_config"]
    single, _ = find_run_dirs([sweep / "0_job", sweep / "0_job"])  # a run dir itself; duplicates collapse
    assert single == [(sweep / "0_job").resolve()]
    with pytest.raises(FileNotFoundError):
        find_run_dirs([sweep / "missing"])


def test_load_run_reads_summary_config_and_curve(sweep: Path):
    run = load_run(sweep / "0_job")
    assert (run.algo, run.seed, run.steps) == ("consistency_ac", 0, 1000)
    assert (run.final_normalized, run.best_normalized) == (60.0, 80.0)
    assert run.config["agent.eta"] == 1.0 and run.config["agent.hidden_dims"] == [256, 256]
    assert run.curve_steps.tolist() == [500, 1000] and run.curve_normalized.tolist() == [50.0, 60.0]
    (sweep / "0_job" / "summary.json").write_text("{}")
    with pytest.raises(ValueError, match="summary"):
        load_run(sweep / "0_job")


def test_groups_split_on_varying_config_but_not_on_seed_or_logger(tmp_path: Path):
    runs = [load_run(make_run(tmp_path, f"r{eta}_{seed}", seed=seed, eta=eta, final=10 * eta + seed))
            for eta in (0.5, 2.0) for seed in range(2)]
    groups = group_runs(runs)
    assert [(g.variant, g.seeds) for g in groups] == [("agent.eta=0.5", [0, 1]), ("agent.eta=2", [0, 1])]
    # different steps budgets are different experiments too
    runs = [load_run(make_run(tmp_path / "s", f"r{steps}", steps=steps)) for steps in (100, 200)]
    assert [g.variant for g in group_runs(runs)] == ["steps=100", "steps=200"]


def test_per_run_paths_do_not_split_an_experiment(tmp_path: Path):
    """Each seed of a distilled student names its own teacher checkpoint: the seeds stay one group."""
    runs = []
    for seed in range(3):
        run = make_run(tmp_path, f"s{seed}", seed=seed, algo="consistency_bc")
        config = yaml.safe_load((run / "config.yaml").read_text())
        config["agent"]["consistency"] = {"objective": "cd", "teacher_checkpoint": f"runs/teacher/seed{seed}/c.pt"}
        (run / "config.yaml").write_text(yaml.safe_dump(config))
        runs.append(load_run(run))
    [group] = group_runs(runs)
    assert group.seeds == [0, 1, 2] and group.variant == ""


def test_a_retired_option_counts_as_the_value_every_run_without_it_used(tmp_path: Path):
    """agent.n_step was retired (docs/experiments.md): runs that lack it (written before it existed or
    after it was retired) ran one-step targets and join the runs that recorded n_step=1."""
    old = [load_run(make_run(tmp_path / "old", f"r{seed}", seed=seed)) for seed in range(2)]
    new = []
    for seed, n_step in ((2, 1), (3, 1), (4, 5)):
        run = make_run(tmp_path / "new", f"r{seed}", seed=seed)
        config = yaml.safe_load((run / "config.yaml").read_text())
        config["agent"]["n_step"] = n_step
        (run / "config.yaml").write_text(yaml.safe_dump(config))
        new.append(load_run(run))
    groups = group_runs(old + new)
    assert [(g.variant, g.seeds) for g in groups] == [("agent.n_step=1", [0, 1, 2, 3]), ("agent.n_step=5", [4])]
    [one_step] = group_runs(old + new[:2])
    assert one_step.variant == "" and one_step.seeds == [0, 1, 2, 3]


def test_summarize_group_scores_final_checkpoints_and_keeps_best_separate(sweep: Path):
    runs = [load_run(p) for p in find_run_dirs([sweep])[0]]
    rows = [summarize_group(g, ReportSettings(n_resamples=500)) for g in group_runs(runs)]
    assert len(rows) == 4
    ac = next(r for r in rows if r.group.algo == "consistency_ac" and "hopper" in r.group.dataset)
    assert ac.metric == "normalised score" and ac.final.n == 3
    assert ac.final.mean == pytest.approx(61.0) and ac.final.std == pytest.approx(1.0)
    assert ac.best is not None and ac.best.mean == pytest.approx(81.0)
    assert ac.final.iqm_ci[0] >= 60.0 and ac.final.iqm_ci[1] <= 62.0
    assert ac.dataset_normalized == 40.0


def test_runs_without_reference_scores_are_reported_as_returns(tmp_path: Path):
    runs = [load_run(make_run(tmp_path, f"r{s}", dataset="my/pendulum-v0", env_id="Pendulum-v1", seed=s,
                              final=-5.0 - s, refs=False)) for s in range(2)]
    row = summarize_group(group_runs(runs)[0], ReportSettings(n_resamples=100))
    assert row.metric == "return" and row.best is None
    assert row.final.mean == pytest.approx(30.0 * -5.5)
    assert "final return: mean ± std" in text_report([row], ReportSettings(n_resamples=100))


def test_text_and_markdown_reports_state_protocol_steps_and_seeds(sweep: Path):
    runs = [load_run(p) for p in find_run_dirs([sweep])[0]]
    settings = ReportSettings(n_resamples=200)
    rows = [summarize_group(g, settings) for g in group_runs(runs)]
    text = text_report(rows, settings)
    assert text.count("== data/bench/") == 2 and "Hopper-v5" in text and "HalfCheetah-v5" in text
    assert "61.0 ± 1.0" in text and "81.0 ± 1.0" in text and "3 (0,1,2)" in text
    assert "best during training (optimistic)" in text and "final checkpoint" in text
    assert "all datasets" in text
    md = markdown_report(rows, settings, plots={("data/bench/hopper-medium.hdf5", "Hopper-v5"): "curves_x.png"},
                         skipped=[sweep / "90_failed"])
    assert md.count("| algorithm |") == 3 and "![learning curves on data/bench/hopper-medium.hdf5](curves_x.png)" in md
    assert "90_failed" in md and "bootstrap" in md


def test_duplicate_seeds_are_flagged(tmp_path: Path):
    runs = [load_run(make_run(tmp_path, f"r{i}", seed=0)) for i in range(2)]
    row = summarize_group(group_runs(runs)[0], ReportSettings(n_resamples=50))
    assert "DUPLICATE SEEDS" in text_report([row], ReportSettings(n_resamples=50))


def test_report_script_end_to_end(sweep: Path, tmp_path: Path):
    out = tmp_path / "report"
    proc = subprocess.run([sys.executable, str(REPORT), str(sweep), "--out", str(out), "--bootstrap", "500"],
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert "consistency_ac" in proc.stdout and "3 unfinished or failed run(s) not scored" in proc.stdout
    pngs = sorted(p.name for p in out.glob("*.png"))
    assert pngs == ["curves_data_bench_halfcheetah-mixed.hdf5.png", "curves_data_bench_hopper-medium.hdf5.png"]
    assert all((out / p).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" for p in pngs)
    md = (out / "results.md").read_text()
    assert "curves_data_bench_hopper-medium.hdf5.png" in md
    assert len((out / "runs.csv").read_text().strip().splitlines()) == 13


def test_runs_on_different_files_of_one_dataset_are_refused(tmp_path: Path):
    """Same generator, seed and name, another file (e.g. made on another CPU): its runs are not comparable."""
    same = [load_run(make_run(tmp_path, "a", fingerprint="0ede933d23adb827")),
            load_run(make_run(tmp_path, "b", seed=1, fingerprint="0ede933d23adb827")),
            load_run(make_run(tmp_path, "old", seed=2))]  # written before fingerprints: told by the mean return
    assert [g.seeds for g in group_runs(same)] == [[0, 1, 2]]
    other = load_run(make_run(tmp_path, "c", seed=3, fingerprint="b5ecf7130a06913d", data_return=1190.5))
    with pytest.raises(ValueError, match=r"trained on 2 different files \(data fingerprint 0ede933d23adb827: 2 run"):
        group_runs(same + [other])
    older = load_run(make_run(tmp_path, "d", seed=4, data_return=1190.5))  # no fingerprints: the mean return tells
    with pytest.raises(ValueError, match="data mean return 1200.000000: 1 run"):
        group_runs([same[2], older])
    elsewhere = load_run(make_run(tmp_path, "e", dataset="data/bench/hopper-mixed.hdf5", fingerprint="344d1b499170c30e",
                                  data_return=205.4))
    assert len(group_runs(same + [elsewhere])) == 2  # other datasets may differ, of course

    proc = subprocess.run([sys.executable, str(REPORT), str(tmp_path), "--out", str(tmp_path / "report")],
                          capture_output=True, text=True, timeout=60)
    assert proc.returncode == 2 and "report: error:" in proc.stderr and "not comparable" in proc.stderr
    assert "Traceback" not in proc.stderr and not (tmp_path / "report").exists()


def test_report_script_errors_without_finished_runs(tmp_path: Path):
    (tmp_path / "empty").mkdir()
    proc = subprocess.run([sys.executable, str(REPORT), str(tmp_path / "empty")], capture_output=True, text=True,
                          timeout=60)
    assert proc.returncode == 1 and "no finished runs" in proc.stderr
    proc = subprocess.run([sys.executable, str(REPORT), str(tmp_path / "nope")], capture_output=True, text=True,
                          timeout=60)
    assert proc.returncode == 2 and "does not exist" in proc.stderr
