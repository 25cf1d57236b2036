"""Several processes updating one leaderboard at once (issue 8, case 5).

Writers merge rows under the board's lock and replace the file by a rename; a reader that
never locks must see a complete, valid board at every moment, and the end result must hold
exactly the rows written, ranked the same way whatever the order they arrived in.
"""

from __future__ import annotations

import csv
import math
import multiprocessing
import random

from results.board.leaderboard import merge_rows, rank_rows, read_csv_rows

WRITERS = 4
ROWS_PER_WRITER = 30
#: Objectives with ties, NaN and both infinities: each must rank deterministically.
VALUES = [0.9, 0.8, 0.9, math.nan, math.inf, -math.inf, 0.7, 0.8, 0.95, 0.5]


def writer_rows(writer: int) -> list[dict]:
    rows = []
    for i in range(ROWS_PER_WRITER):
        value = VALUES[(writer * 7 + i) % len(VALUES)]
        rows.append({
            "rank": "", "trial_id": f"w{writer}_{i:03d}", "status": "completed",
            "objective": value, "model.name": "cnn", f"only_w{writer}": i,
        })  # fmt: skip
    return rows


def write_all(path: str, writer: int) -> None:
    rng = random.Random(writer)
    for row in writer_rows(writer):
        if rng.random() < 0.3:  # some rows are written twice: the second replaces the first
            merge_rows(path, [{**row, "status": "running"}], "max")
        merge_rows(path, [row], "max")


def check_board(path) -> int:
    """Parses the board as an unlocking reader would; returns its row count."""
    with open(path, newline="") as handle:
        lines = list(csv.reader(handle))
    header, body = lines[0], lines[1:]
    assert header[:2] == ["rank", "trial_id"], header
    assert all(len(line) == len(header) for line in body)
    ranks = [int(line[0]) for line in body if line[0] != ""]
    assert ranks == list(range(1, len(ranks) + 1))  # ranked rows first, contiguous
    ids = [line[1] for line in body]
    assert len(ids) == len(set(ids))
    return len(body)


def test_concurrent_writers_lose_nothing_and_readers_always_see_a_valid_board(tmp_path):
    path = tmp_path / "leaderboard.csv"
    context = multiprocessing.get_context("spawn")
    writers = [context.Process(target=write_all, args=(str(path), w)) for w in range(WRITERS)]
    for process in writers:
        process.start()
    seen, reads = 0, 0
    while any(p.is_alive() for p in writers):
        if path.exists():
            count = check_board(path)
            assert count >= seen  # rows are never lost, even for a moment
            seen, reads = count, reads + 1
    for process in writers:
        process.join()
        assert process.exitcode == 0
    assert reads > 10  # the reader really looked while they wrote
    final = read_csv_rows(path)
    expected = [row for w in range(WRITERS) for row in writer_rows(w)]
    assert sorted(r["trial_id"] for r in final) == sorted(r["trial_id"] for r in expected)
    assert all(r["status"] == "completed" for r in final)
    assert check_board(path) == WRITERS * ROWS_PER_WRITER
    reference = rank_rows([dict(r) for r in expected], "max")
    assert [r["trial_id"] for r in final] == [r["trial_id"] for r in reference]


def test_ranking_is_deterministic_with_nan_inf_and_ties():
    rows = [
        {"trial_id": "b", "objective": 0.9}, {"trial_id": "a", "objective": 0.9},
        {"trial_id": "c", "objective": math.nan}, {"trial_id": "d", "objective": math.inf},
        {"trial_id": "e", "objective": "nan"}, {"trial_id": "f", "objective": 0.95},
        {"trial_id": "g", "objective": ""}, {"trial_id": "h", "objective": "-inf"},
        {"trial_id": "i", "objective": "0.5"},
    ]  # fmt: skip
    boards = set()
    for seed in range(20):
        shuffled = [dict(r) for r in rows]
        random.Random(seed).shuffle(shuffled)
        ranked = rank_rows(shuffled, "max")
        boards.add(tuple((r["rank"], r["trial_id"]) for r in ranked))
    assert boards == {
        ((1, "f"), (2, "a"), (3, "b"), (4, "i"),
         ("", "c"), ("", "d"), ("", "e"), ("", "g"), ("", "h"))
    }  # fmt: skip
    low = rank_rows([dict(r) for r in rows], "min")
    assert [(r["rank"], r["trial_id"]) for r in low][:4] == [(1, "i"), (2, "a"), (3, "b"), (4, "f")]
