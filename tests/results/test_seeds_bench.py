"""bench/seeds.py --quick on the suite's finished search: it cannot rot (issue 6)."""

from __future__ import annotations

import importlib.util
import re

import pytest

from tests.conftest import REPO

pytestmark = pytest.mark.slow


def test_seeds_bench_trains_each_seed_and_the_winner_and_compares(searched_run, capsys):
    spec = importlib.util.spec_from_file_location("bench_seeds", REPO / "bench" / "seeds.py")
    bench = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(bench)
    assert bench.main([str(searched_run), "--quick"]) == 0
    out = capsys.readouterr().out
    line = re.compile(r"^(search winner \(\w+\)|seed_\w+)\s+\d+\s+([\d. ]+)$", re.M)
    rows = {m.group(1): [float(v) for v in m.group(2).split()] for m in line.finditer(out)}
    assert any(name.startswith("search winner") for name in rows), out
    assert "seed_3conv" in rows, out  # 3 pooled blocks fit 32 px
    assert "seed_5conv" in out  # listed, trained or not (5 pools do not fit 32 px)
    for values in rows.values():
        assert len(values) == 4 and all(0.0 <= v <= 1.0 for v in values)
    assert re.search(
        r"test rw_auc: [+-]\d\.\d{4} \((beats every seed|does NOT beat every seed)\)", out
    )
