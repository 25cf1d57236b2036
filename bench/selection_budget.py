"""What a pick among more trials scores on the shift sets, by selection rule (issue 16).

The collected curves (``bench/figures/surrogate_curves.json``: configurations of the
``kermany_sizes`` space trained 8 epochs each on chest_xray_224, each scored on its
validation split, carved test, the external set and the robustness suite) stand in for the
fully-trained trials of a search. For each pool size N (a longer search sees more trials),
many random pools of N configurations are drawn without replacement; each rule picks one
configuration from each pool, and the pick's shift scores are averaged over the pools.

Rules (the first three are ``final --select``'s, on the validation interval of the best):

- ``objective``: the best validation rw_auc (what the search ranks by);
- ``simplest``: among those tied with the best (validation within ``--tie`` of it), the
  fewest parameters (the one-standard-error rule);
- ``suite_mean``: among the tied, the best robustness-suite mean (here scored on carved
  test images, as the collector did);
- ``val_auc``: among the tied, the best validation AUC (threshold-free);
- ``tied_mean``: the average over the tied (a pick at random among them);
- ``oracle``: the best external rw_auc (an upper bound no rule can see).

A rule that keeps its external scores as N grows does not select for the carved split.

    python bench/selection_budget.py --sizes 5 10 20 30 --draws 4000 --tie 0.015
    python bench/selection_budget.py --quick   # the test's mode
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

REPO = Path(__file__).resolve().parents[1]
CURVES = REPO / "bench" / "figures" / "surrogate_curves.json"

#: The scores averaged over the pools, in the table's order.
TARGETS = (
    "external_rw_auc",
    "external_specificity",
    "test_rw_auc",
    "test_specificity",
    "suite_worst_rw_auc",
)


def load_table(path: Path) -> dict[str, np.ndarray]:
    """One array per score (and ``param_count``) over the collected configurations."""
    curves = [c for c in json.loads(path.read_text())["curves"] if c["status"] == "completed"]
    columns = ("val_rw_auc", "val_auc", "suite_mean_rw_auc", *TARGETS)
    table = {k: np.array([c["scores"][k] for c in curves], dtype=float) for k in columns}
    table["param_count"] = np.array([c["param_count"] for c in curves], dtype=float)
    return table


def _tied(table: dict[str, np.ndarray], pool: np.ndarray, tie: float) -> np.ndarray:
    val = table["val_rw_auc"][pool]
    return pool[val >= val.max() - tie]


def _top(table: dict[str, np.ndarray], among: np.ndarray, key: str, sign: float) -> np.ndarray:
    return among[[int(np.argmax(sign * table[key][among]))]]


def _best_by(key: str, sign: float = 1.0, ties: bool = True) -> Callable[..., np.ndarray]:
    """The rule: the best by ``key`` among the tied (``ties``) or the whole pool."""

    def rule(table, pool, tie):
        return _top(table, _tied(table, pool, tie) if ties else pool, key, sign)

    return rule


#: Rule name -> function(table, pool, tie) -> the indices whose scores count (one pick,
#: or every tied configuration for ``tied_mean``).
RULES: dict[str, Callable[..., np.ndarray]] = {
    "objective": _best_by("val_rw_auc", ties=False),
    "simplest": _best_by("param_count", sign=-1.0),
    "suite_mean": _best_by("suite_mean_rw_auc"),
    "val_auc": _best_by("val_auc"),
    "tied_mean": _tied,
    "oracle": _best_by("external_rw_auc", ties=False),
}


def simulate(
    table: dict[str, np.ndarray], sizes: list[int], draws: int, tie: float, seed: int
) -> dict[str, dict[str, dict[str, float]]]:
    """Per pool size and rule, the mean of each target over the drawn pools.

    Every rule sees the same pools (paired); ``ties`` is the mean number tied with the best.
    """
    rng = np.random.default_rng(seed)
    total = len(table["val_rw_auc"])
    out: dict[str, dict[str, dict[str, float]]] = {}
    for size in sizes:
        pools = [rng.choice(total, size=min(size, total), replace=False) for _ in range(draws)]
        per_rule: dict[str, dict[str, float]] = {}
        for name, rule in RULES.items():
            picks = [rule(table, pool, tie) for pool in pools]
            per_rule[name] = {
                t: float(np.mean([table[t][p].mean() for p in picks])) for t in TARGETS
            }
        per_rule["objective"]["ties"] = float(np.mean([len(_tied(table, p, tie)) for p in pools]))
        out[str(size)] = per_rule
    return out


def print_tables(result: dict[str, Any]) -> None:
    """One block per target: rules down, pool sizes across."""
    sizes = list(result["by_size"])
    for target in TARGETS:
        print(f"\n{target} of the pick (mean over pools); pool size:")
        print(f"{'rule':<12}" + "".join(f"{s:>9}" for s in sizes))
        for name in RULES:
            cells = "".join(f"{result['by_size'][s][name][target]:>9.4f}" for s in sizes)
            print(f"{name:<12}{cells}")
    ties = "".join(f"{result['by_size'][s]['objective']['ties']:>9.1f}" for s in sizes)
    print(f"\n{'tied (mean)':<12}{ties}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--curves", default=str(CURVES), help="collected curves (JSON)")
    parser.add_argument("--sizes", type=int, nargs="+", default=[5, 10, 20, 30])
    parser.add_argument("--draws", type=int, default=4000, help="random pools per size")
    parser.add_argument("--tie", type=float, default=0.015, help="validation tie width")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", help="where the JSON goes (default: none)")
    parser.add_argument("--quick", action="store_true", help="2 sizes, 200 draws")
    args = parser.parse_args(argv)
    if args.quick:
        args.sizes, args.draws = [5, 10], 200
    table = load_table(Path(args.curves))
    result = {
        "args": vars(args),
        "configurations": len(table["val_rw_auc"]),
        "by_size": simulate(table, args.sizes, args.draws, args.tie, args.seed),
    }
    print(
        f"{result['configurations']} configurations from {args.curves}; "
        f"{args.draws} pools per size, tie width {args.tie}, seed {args.seed}"
    )
    print_tables(result)
    if args.out:
        Path(args.out).write_text(json.dumps(result, indent=1))
        print(f"\nevery number: {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
