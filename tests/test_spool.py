"""The durable spool on real files: order, torn lines, the size bound, dead letters, several
processes appending while one delivers."""

from __future__ import annotations

import logging
import multiprocessing
import os
import stat
from pathlib import Path

import pytest

from claude_api.spool import SEGMENT_BYTES, Spool, SpoolFull, encode


def _events(prefix: str, count: int) -> list[dict[str, object]]:
    return [{"event_id": f"{prefix}-{index}", "n": index} for index in range(count)]


def _deliver_all(spool: Spool) -> list[list[dict[str, object]]]:
    delivered = []
    with spool.delivering() as delivery:
        assert delivery is not None
        for record in delivery.records():
            delivered.append(record.events)
            delivery.done(record)
    return delivered


def test_records_come_back_in_order_once_and_the_files_are_private(tmp_path: Path) -> None:
    spool = Spool(tmp_path / "spool")
    assert not spool.pending()
    batches = [_events(f"b{index}", index + 1) for index in range(5)]
    for batch in batches:
        spool.append(batch)

    assert spool.pending()
    status = spool.status()
    assert (status.records, status.events) == (5, sum(len(batch) for batch in batches))
    for path in (tmp_path / "spool").iterdir():
        assert stat.S_IMODE(path.stat().st_mode) == 0o600, path
    assert stat.S_IMODE((tmp_path / "spool").stat().st_mode) == 0o700

    assert _deliver_all(spool) == batches
    assert not spool.pending()
    assert _deliver_all(spool) == []  # nothing twice
    assert spool.status().events == 0
    assert not list((tmp_path / "spool").glob("segment-*"))  # delivered segments are removed


def test_a_record_not_marked_done_is_delivered_again(tmp_path: Path) -> None:
    spool = Spool(tmp_path / "spool")
    spool.append(_events("a", 2))
    spool.append(_events("b", 3))
    with spool.delivering() as delivery:
        assert delivery is not None
        first = next(iter(delivery.records()))
        delivery.done(first)
        next(iter(delivery.records()))  # read, then the process "dies" before it is done
    assert _deliver_all(spool) == [_events("b", 3)]


def test_a_torn_line_is_skipped_counted_and_later_records_survive(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    spool = Spool(tmp_path / "spool")
    spool.append(_events("before", 2))
    segment = next((tmp_path / "spool").glob("segment-*"))
    with segment.open("ab") as file:  # a writer killed halfway through its line
        file.write(encode(_events("torn", 3))[:25])
    spool.append(_events("after", 1))

    with caplog.at_level(logging.ERROR):
        assert _deliver_all(spool) == [_events("before", 2), _events("after", 1)]
    assert spool.status().corrupt_lines == 1
    assert "torn line" in caplog.text


def test_a_torn_line_at_the_very_end_is_removed(tmp_path: Path) -> None:
    spool = Spool(tmp_path / "spool")
    spool.append(_events("kept", 1))
    segment = next((tmp_path / "spool").glob("segment-*"))
    with segment.open("ab") as file:
        file.write(b'{"events":[{"ev')
    assert _deliver_all(spool) == [_events("kept", 1)]
    assert not spool.pending()
    assert spool.status().corrupt_lines == 1


def test_a_full_spool_refuses_counts_and_logs(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    one = len(encode(_events("x", 10))) + 1
    spool = Spool(tmp_path / "spool", max_bytes=one * 2)
    spool.append(_events("x", 10))
    spool.append(_events("y", 10))
    with caplog.at_level(logging.ERROR), pytest.raises(SpoolFull):
        spool.append(_events("z", 10))
    status = spool.status()
    assert (status.events, status.overflowed_records, status.overflowed_events) == (20, 1, 10)
    assert "10 events not kept" in caplog.text
    _deliver_all(spool)
    spool.append(_events("z", 10))  # room again once delivered
    assert spool.status().events == 10


def test_segments_roll_over_and_are_read_across(tmp_path: Path) -> None:
    spool = Spool(tmp_path / "spool", max_bytes=4 * SEGMENT_BYTES)
    big = [{"event_id": f"e{index}", "pad": "x" * 1000} for index in range(1000)]
    count = SEGMENT_BYTES // len(encode(big)) + 2
    for index in range(count):
        spool.append([{**event, "batch": index} for event in big[:10]] + big)
    assert len(list((tmp_path / "spool").glob("segment-*"))) == 2
    delivered = _deliver_all(spool)
    assert [batch[0]["batch"] for batch in delivered] == list(range(count))
    assert not list((tmp_path / "spool").glob("segment-*"))


def test_dead_letters_are_kept_and_counted(tmp_path: Path) -> None:
    spool = Spool(tmp_path / "spool")
    spool.dead_letter(_events("d", 3), status=409, reason="belongs to another invocation")
    spool.dead_letter(_events("e", 2), status=401, reason="the API key is not valid")
    assert spool.status().dead_events == 5
    assert not spool.pending()


def test_dead_letters_can_go_back_behind_what_waits(tmp_path: Path) -> None:
    spool = Spool(tmp_path / "spool")
    spool.append(_events("waiting", 1))
    spool.dead_letter(_events("d", 3), status=401, reason="the API key is not valid")
    spool.dead_letter(_events("e", 2), status=401, reason="the API key is not valid")

    assert spool.requeue() == 5
    assert spool.status().dead_events == 0
    assert _deliver_all(spool) == [_events("waiting", 1), _events("d", 3), _events("e", 2)]
    assert spool.requeue() == 0


def _append_many(directory: str, name: str, count: int) -> None:
    spool = Spool(Path(directory))
    for index in range(count):
        spool.append([{"producer": name, "n": index}])


def test_several_processes_append_while_one_delivers(tmp_path: Path) -> None:
    directory = tmp_path / "spool"
    context = multiprocessing.get_context("spawn")
    producers = [
        context.Process(target=_append_many, args=(str(directory), f"p{index}", 150))
        for index in range(3)
    ]
    for process in producers:
        process.start()
    spool = Spool(directory)
    seen: list[dict[str, object]] = []
    while any(process.is_alive() for process in producers) or spool.pending():
        for batch in _deliver_all(spool):
            seen.extend(batch)
    for process in producers:
        process.join()
        assert process.exitcode == 0
    seen.extend(event for batch in _deliver_all(spool) for event in batch)

    for index in range(3):
        mine = [event["n"] for event in seen if event["producer"] == f"p{index}"]
        assert mine == list(range(150))  # each exactly once, in its order
    assert os.listdir(directory)  # the lock and cursor files stay
