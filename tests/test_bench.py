"""The benchmark scripts run in their --quick mode, so they cannot rot."""

from __future__ import annotations

import json
import re
import subprocess
import sys

import pytest

from tests.conftest import REPO


def test_cache_speed_quick(mini_root):
    proc = subprocess.run(
        [sys.executable, str(REPO / "bench" / "cache_speed.py"), "--quick"],
        capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    ratio = float(re.search(r"ratio uncached / cached\s*:\s*([\d.]+)x", proc.stdout).group(1))
    assert ratio > 1.0, proc.stdout  # the cache must at least beat decoding


def run_quick(script: str, *args: str, timeout: int = 600) -> str:
    """Runs ``bench/SCRIPT --quick ARGS...`` from the repository; returns its stdout."""
    proc = subprocess.run(
        [sys.executable, str(REPO / "bench" / script), *args, "--quick"],
        capture_output=True, text=True, timeout=timeout, cwd=REPO,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-3000:]
    return proc.stdout


def test_trial_overhead_quick(mini_root):
    out = run_quick("trial_overhead.py")
    ratio = float(re.search(r"ratio trial / direct\s*:\s*([\d.]+)", out).group(1))
    assert 0.2 < ratio < 5.0, out  # both sides ran and were timed


def test_memory_flat_quick(mini_root):
    out = run_quick("memory_flat.py")
    for n in range(1, 5):  # every one of the 4 trials, also two ending at the same moment
        assert re.search(rf"after trial\s+{n} ended", out), out
    ratio = float(re.search(r"ratio last \d / first \d ends\s*:\s*([\d.]+)", out).group(1))
    assert ratio > 0.0


def test_concurrency_quick(mini_root):
    out = run_quick("concurrency.py")
    assert re.search(r"1 concurrent: 2 trials in", out) and re.search(
        r"2 concurrent: 2 trials", out
    )
    # the two trials ran at the same time only where two were allowed (the speed-up itself
    # is a measurement for bench/RESULTS.md: the suite's other worker shares these cores)
    assert re.search(r"1 concurrent: .* at most 1 at once", out), out
    assert re.search(r"2 concurrent: .* at most 2 at once", out), out
    ratio = float(re.search(r"ratio 2 concurrent / 1 concurrent.*:\s*([\d.]+)", out).group(1))
    assert ratio > 0, out


@pytest.mark.slow
def test_compare_search_quick(mini_root, tmp_path):
    """All four tools search to the same budget; curves, winners and test scores come out."""
    out = tmp_path / "compare"
    stdout = run_quick("compare_search.py", str(mini_root), "--out", str(out), timeout=900)
    results = json.loads((out / "compare_search.json").read_text())
    arms = results["0"]
    assert sorted(arms) == ["kerastuner", "optuna", "pneumo-search", "random"]
    for name, arm in arms.items():
        assert arm["trial_epochs"] == 4, name  # each spent exactly the budget
        epochs = [point[0] for point in arm["curve"]]
        best = [point[2] for point in arm["curve"]]
        assert epochs == list(range(1, 5)), name
        assert best == sorted(best) and 0.0 <= best[-1] <= 1.0, name  # best so far
        assert arm["winner"]["model.name"] == "cnn", name
        assert all(0.0 <= arm["test"][c] <= 1.0 for c in ("auc", "sensitivity")), name
    # random search's own curve reaches its best by definition
    assert arms["random"]["to_random_best"][0] is not None
    assert re.search(r"^random\s+\d\.\d{4}\s+\d", stdout, re.M), stdout
    assert (out / "compare_search.png").stat().st_size > 10_000


@pytest.mark.slow
def test_robustness_quick(mini_root, tmp_path):
    """A robustness-objective search finalized; every model scored on test and external."""
    out = tmp_path / "robustness"
    stdout = run_quick("robustness.py", str(mini_root), "--out", str(out), timeout=900)
    results = json.loads((out / "robustness.json").read_text())
    assert [r["objective"] for r in results["runs"]] == ["worst"]
    for run in results["runs"]:
        assert run["excluded"]["patients_excluded"] > 0  # the external patients left the data
        assert run["external_images"] == 200  # chest_xray_mini's val split
        names = [row["model"] for row in run["rows"]]
        assert names[-1].endswith("+ TTA") and "member 1" in names
        for row in run["rows"]:
            assert 0.0 <= row["test_rw_auc"] <= 1.0 and 0.0 <= row["external_rw_auc"] <= 1.0
    assert {m["objective"] for m in results["medians"]} == {"worst"}
    assert re.search(r"^worst\s+member 1\s+1\s+\d\.\d{4}", stdout, re.M), stdout
    # the quick space always equalizes: the winner is retrained without it, side by side
    ablated = results["runs"][0]["ablations"]
    assert "model.params.equalize" in [row["option"] for row in ablated]
    assert all(row["model"] == f"without {row['option']}" for row in ablated)
    effects = {e["option"]: e for e in results["option_effects"]}
    assert effects["model.params.equalize"]["runs"] == 1
    assert -1.0 <= effects["model.params.equalize"]["test_rw_auc"] <= 1.0
    assert re.search(r"^model\.params\.equalize\s+1\s+-?\d\.\d{4}", stdout, re.M), stdout


@pytest.mark.parametrize("name", ["compare_search.yaml", "compare_search_wide.yaml"])
def test_compare_search_experiments_are_valid_flat_spaces(name, mini_root):
    """Both experiments of the search comparison load, validate and translate to Tune."""
    from bench.compare_search import tune_space
    from search.experiment_space import prepare_experiment

    _, space = prepare_experiment(REPO / "bench" / name, {"data": {"root": str(mini_root)}})
    translated = tune_space(space)  # raises for anything but a flat space
    assert "training.learning_rate" in translated
    assert set(translated) == set(space.names()) | {"model.name"}


def test_proxies_quick(mini_root, tmp_path):
    """A search's top 2 retrained, scored on every proxy, ranked against the shift scores."""
    out = tmp_path / "proxies"
    stdout = run_quick("proxies.py", str(mini_root), "--out", str(out), timeout=900)
    results = json.loads((out / "proxies.json").read_text())
    models = results["models"]
    assert 2 <= len(models) <= 3
    for m in models:
        assert set(m["families"]) == {"NORMAL2-IM", "IM", "bacteria", "virus"}
        assert m["family_worst_rw_auc"] == min(m["families"].values())
        assert 0.0 <= m["external_rw_auc"] <= 1.0 and 0.0 <= m["search_val"] <= 1.0
    rows = {e["proxy"]: e for e in results["correlations"]}
    assert rows["external_rw_auc"]["external_rw_auc"] is None  # a target against itself
    if len(models) == 3:
        rho = rows["val_rw_auc"]["family_worst_rw_auc"]
        assert rho is None or -1.0 <= rho <= 1.0
    assert "Spearman rho over" in stdout
    # --board scores that finished search again, without searching: the same top models
    board = out / "proxies-seed0"
    run_quick("proxies.py", str(mini_root), "--board", str(board), "--out", str(out / "b"))
    again = json.loads((out / "b" / "proxies.json").read_text())
    assert [m["trial_id"] for m in again["models"]] == [m["trial_id"] for m in models]
    assert again["args"]["trials"] == len((board / "leaderboard.csv").read_text().splitlines()) - 1


def test_levers_quick(mini_root, tmp_path):
    """The best configuration retrained with and without a lever, scored side by side."""
    out = tmp_path / "levers"
    stdout = run_quick("levers.py", str(mini_root), "--out", str(out), timeout=600)
    results = json.loads((out / "levers.json").read_text())
    # every seed's model is scored (not only the best seed's)
    assert [r["lever"] for r in results["rows"]] == ["baseline", "baseline", "ema", "ema"]
    for row in results["rows"]:
        assert 0.0 <= row["test_rw_auc"] <= 1.0 and 0.0 <= row["external_rw_auc"] <= 1.0
    delta = results["deltas"]["ema"]["test_rw_auc"]
    base, ema = (results["medians"][k]["test_rw_auc"] for k in ("baseline", "ema"))
    assert delta == ema - base
    assert "each lever minus the baseline" in stdout


def test_site_levers_quick(mini_root, tmp_path):
    """A lever retrained and scored on a site sample, with paired intervals and the
    cross-fitted site calibration."""
    out = tmp_path / "site"
    stdout = run_quick("site_levers.py", str(mini_root), "--out", str(out), timeout=600)
    result = json.loads((out / "site_levers.json").read_text())
    assert [(r["lever"], r["seed"]) for r in result["rows"]] == [("baseline", 0), ("strong", 0)]
    for row in result["rows"]:
        assert 0.0 <= row["site_auc"] <= 1.0 and row["epoch_s"] > 0
        assert len(row["site_probs"]) == result["site_count"]
    strong = result["seed_mean"]["strong"]
    low, high = strong["auc_minus_baseline_ci"]
    assert low <= strong["auc_minus_baseline"] <= high
    calibrated = result["site_calibration"]["baseline"]["cross_fitted"]["platt"]
    assert 0.0 <= calibrated["specificity"]["median"] <= 1.0
    assert "minus baseline" in stdout and "site calibration, cross-fitted" in stdout


def test_budget_curve_quick(mini_root, tmp_path):
    """The recipe searched and finalized, its report read off as shift proxies."""
    out = tmp_path / "budget"
    stdout = run_quick("budget_curve.py", str(mini_root), "--out", str(out), timeout=600)
    results = json.loads((out / "budget_curve.json").read_text())
    (row,) = results["rows"]
    assert row["trials"] == 2 and 0.0 <= row["best_val"] <= 1.0
    for column in ("test_auc", "test_specificity", "external_auc", "external_specificity"):
        assert 0.0 <= row[column] <= 1.0, column
    assert results["medians"]["0.5"]["test_auc"] == row["test_auc"]
    assert "falling from the shortest to the longest budget" in stdout


def test_budget_prefix_board_is_the_search_as_it_stood(mini_root, tmp_path):
    """A search cut at a minute keeps only the epochs reported by then, re-ranked."""
    import yaml

    from bench.budget_curve import write_prefix
    from results.board.leaderboard import read_csv_rows, write_csv_atomic
    from tests.search.conftest import experiment_dict

    run = tmp_path / "search"
    run.mkdir()
    (run / "experiment.yaml").write_text(yaml.safe_dump(experiment_dict(mini_root, run)))
    # trial a starts at t=1000 s, one epoch per 100 s; b starts at t=1150, 100 s per epoch
    curves = {"a": (1000, [0.70, 0.80, 0.90]), "b": (1150, [0.85, 0.95])}
    board = []
    for trial, (start, values) in curves.items():
        (run / f"trial_{trial}").mkdir()
        lines = [
            {"trial_id": trial, "epoch": i + 1, "timestamp": start + 100 * (i + 1),
             "time_total_s": 100.0 * (i + 1), "val_rw_auc": v, "val_rw_auc_low": v - 0.03}
            for i, v in enumerate(values)
        ]  # fmt: skip
        text = "".join(json.dumps(line) + "\n" for line in lines)
        (run / f"trial_{trial}" / "result.json").write_text(text)
        board.append({"trial_id": trial, "status": "completed", "stop_reason": "max_epochs",
                      "model.name": "cnn", "training.learning_rate": 0.01})  # fmt: skip
    write_csv_atomic(run / "leaderboard.csv", board)

    at_260s = read_csv_rows(write_prefix(run, 260 / 60) / "leaderboard.csv")
    assert [(r["trial_id"], r["rank"], r["epochs_run"]) for r in at_260s] == [
        ("b", "1", "1"),  # b's first epoch (0.85) beats a's best by then (0.80)
        ("a", "2", "2"),
    ]
    assert [float(r["objective"]) for r in at_260s] == [0.85, 0.80]
    assert [r["tied_with_best"] for r in at_260s] == ["yes", "no"]  # b's interval is 0.82+
    assert {r["status"] for r in at_260s} == {"stopped_early"}  # both were still running
    assert at_260s[0]["training.learning_rate"] == "0.01"  # the configuration goes along
    (only_a,) = read_csv_rows(write_prefix(run, 120 / 60) / "leaderboard.csv")
    assert (only_a["trial_id"], only_a["objective"], only_a["stop_reason"]) == (
        "a", "0.7", "time_budget",
    )  # fmt: skip
    whole = read_csv_rows(write_prefix(run, 60.0) / "leaderboard.csv")
    assert [(r["trial_id"], r["status"], r["objective"]) for r in whole] == [
        ("b", "completed", "0.95"),
        ("a", "completed", "0.9"),
    ]


def test_surrogate_collect_quick(mini_root, tmp_path):
    """Two configurations trained to the budget; their curves and proxy scores in one file."""
    from bench.surrogate.blackbox import load_blackbox

    out = tmp_path / "curves.json"
    args = (str(mini_root), "--out", str(out), "--external", str(mini_root))
    stdout = run_quick("surrogate/collect.py", *args, timeout=600)
    blackbox = load_blackbox(out)
    assert sorted(c.index for c in blackbox.curves) == [0, 1], stdout
    for curve in blackbox.curves:
        assert curve.status == "completed" and len(curve.epochs) == 2
        assert all(0.0 <= v <= 1.0 for v in curve.column("val_rw_auc"))
        assert all(s > 0 for s in curve.column("seconds"))
        assert 0.0 <= curve.scores["external_specificity"] <= 1.0
    again = run_quick("surrogate/collect.py", *args, timeout=600)  # resumable: nothing to do
    assert "2 curves in" in again and "0 to collect" in again


def test_surrogate_simulation_quick():
    """The committed curves: a surrogate fitted and checked, searches simulated with the
    product's searcher and Ray Tune's ASHA, in under a minute."""
    stdout = run_quick("surrogate/run.py", "--processes", "1", timeout=300)
    rho = float(re.search(r"random_forest\s+rank corr\. final score ([-\d.]+)", stdout)[1])
    assert -1.0 <= rho <= 1.0
    for workers in (1, 4):
        block = stdout.split(f"{workers} worker(s): random's median final best")[1]
        for setting in ("default", "random", "hyperband", "default_warm"):
            assert re.search(rf"^{setting} \| \d+ \|", block, re.M), (setting, block)
    assert "simulated searches in" in stdout


def test_pixel_scope_quick(mini_root, tmp_path):
    """The detector's bench: false alarms on in-scope folders, detection per kind."""
    import json

    out = run_quick("pixel_scope.py", str(mini_root), "--out", str(tmp_path))
    assert "false alarm: test" in out and "detected: inverted radiograph" in out
    (row,) = json.loads((tmp_path / "pixel_scope.json").read_text())["rows"]
    assert row["false_alarm"]["test"]["images"] > 100
    assert row["detection"]["blank frame"]["rate"] == 1.0
