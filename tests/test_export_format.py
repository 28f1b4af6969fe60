"""The export's text: CSV lines exactly as `csv.writer` writes them (quoted cells, empty
cells, numbers) and JSON Lines, whichever way a batch is written; the client's row count of
a stream cut anywhere."""

from __future__ import annotations

import csv
import io
import itertools
import json
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from claude_api.client.export import RowCounter
from claude_api.exports import COLUMNS, ExportFormat, csv_lines, jsonl_lines, stream_rows

TEXT = st.text(alphabet=st.sampled_from("ab,\"\r\n =+-'\té"), max_size=6)
CELL = st.one_of(st.none(), TEXT, st.integers(), st.floats(allow_nan=False))
ROW = st.lists(CELL, min_size=1, max_size=5)


def written(rows: list[list[Any]]) -> str:
    buffer = io.StringIO(newline="")
    csv.writer(buffer).writerows(rows)
    return buffer.getvalue()


def export_row(i: int, **cells: Any) -> list[Any]:
    row: dict[str, Any] = dict.fromkeys(COLUMNS)
    row.update(kind="agent", name=f"agent-{i}", event_id=f"{i:032x}", cost_usd=i / 10)
    row.update(input_tokens=1000 + i, status="completed", source="bench")
    row.update(cells)
    return list(row.values())


@given(st.lists(ROW, max_size=8))
def test_csv_lines_are_what_csv_writer_writes(rows: list[list[Any]]) -> None:
    assert csv_lines(rows) == written(rows)


@pytest.mark.parametrize("character", [",", '"', "\r", "\n"])
@pytest.mark.parametrize("where", [0, 1, 99])
def test_a_cell_holding_a_separator_quote_or_line_break_is_quoted(character: str, where: int):
    rows = [export_row(i) for i in range(100)]
    rows[where] = export_row(where, model=f"claude{character}x")
    assert csv_lines(rows) == written(rows)
    quoted = character.replace('"', '""')
    assert f'"claude{quoted}x"' in csv_lines(rows)


def test_a_row_of_one_empty_cell_is_quoted_like_csv_writer() -> None:
    assert csv_lines([[""], [None]]) == written([[""], [None]]) == '""\r\n""\r\n'


def test_a_batch_with_one_cell_to_quote_is_quoted_like_csv_writer() -> None:
    rows = [export_row(i) for i in range(100)]
    rows[57] = export_row(57, error_message='failed: "x", then\r\nstopped')
    assert csv_lines(rows) == written(rows)
    assert csv_lines(rows[:57]) == written(rows[:57])
    assert '"failed: ""x"", then\r\nstopped"' in csv_lines(rows)


def test_plain_rows_are_joined_cells_with_empty_missing_values() -> None:
    row = export_row(3, duration_seconds=1.0, cost_usd=0.1 + 0.2, output_tokens=0)
    line = csv_lines([row])
    assert line == written([row])
    assert line == (
        f"agent,agent-3,{3:032x},,,,completed,,,1.0,0.30000000000000004,,1003,0,,,,,bench\r\n"
    )


def test_the_stream_is_the_header_then_every_row() -> None:
    rows = [export_row(i) for i in range(12_345)]
    text = "".join(stream_rows(iter(rows), ExportFormat.CSV))
    assert text == written([list(COLUMNS), *rows])
    assert "".join(stream_rows(iter([]), ExportFormat.CSV)) == written([list(COLUMNS)])
    lines = "".join(stream_rows(iter(rows), ExportFormat.JSONL)).splitlines()
    objects = [dict(zip(COLUMNS, row, strict=True)) for row in rows]
    assert [json.loads(line) for line in lines] == objects


JSON_CELL = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(),
    st.floats(),
    st.sampled_from(["agent", "completed", "-0.0", "é", "\u2028"]),
    st.text(max_size=4),
)


@given(st.lists(st.lists(JSON_CELL, min_size=1, max_size=3), max_size=12), st.randoms())
def test_jsonl_lines_are_what_json_dumps_writes(cells: list[list[Any]], random: Any) -> None:
    # Columns of one type or of several, repeated values or not.
    rows = [[random.choice(choices) for choices in cells] * 19 for _ in range(len(cells) * 3)]
    rows = [row[: len(COLUMNS)] for row in rows if len(row) >= len(COLUMNS)]
    expected = "".join(
        json.dumps(dict(zip(COLUMNS, row, strict=True)), ensure_ascii=False) + "\n" for row in rows
    )
    assert jsonl_lines(rows) == expected


@pytest.mark.parametrize(
    "costs",
    [
        [0.5, float("nan"), None, float("inf"), -float("inf")],  # JSON spells them NaN, Infinity
        [0.0, -0.0, 0.0, -0.0, None, 0.0],  # equal, yet written apart
        [1, 2, 1, 1, None, 1],
    ],
)
def test_a_column_of_numbers_is_written_as_json_dumps_writes_it(costs: list[Any]) -> None:
    rows = [export_row(i, cost_usd=cost) for i, cost in enumerate(costs)]
    expected = [
        json.dumps(dict(zip(COLUMNS, row, strict=True)), ensure_ascii=False) for row in rows
    ]
    assert jsonl_lines(rows).splitlines() == expected


def test_a_row_of_another_width_is_refused() -> None:
    with pytest.raises(ValueError, match="19 cells"):
        jsonl_lines([export_row(1), export_row(2)[:-1]])


def test_jsonl_lines_keep_the_columns_order_and_nulls() -> None:
    line = jsonl_lines([export_row(1, error_message='é "x"\n')])
    assert line.startswith('{"kind": "agent", "name": "agent-1", "event_id": ')
    assert '"parent_id": null' in line
    assert '"error_message": "é \\"x\\"\\n"' in line
    assert line.endswith('"source": "bench"}\n')


@given(st.lists(ROW, min_size=1, max_size=8), st.lists(st.integers(0, 400), max_size=6))
def test_the_row_count_of_a_csv_stream_cut_anywhere(rows: list[list[Any]], cuts: list[int]):
    text = written([list(COLUMNS), *rows])
    counter = RowCounter(ExportFormat.CSV)
    edges = [0, *sorted(min(cut, len(text)) for cut in cuts), len(text)]
    counted = sum(counter.add(text[start:end]) for start, end in itertools.pairwise(edges))
    assert counted == counter.rows == len(rows)
