"""The benchmark's audit counts what it must: lost, duplicated, misordered, acked twice."""

from __future__ import annotations

from pathlib import Path

from perf.audit import Audit, _check, read_acks


def _msgs(*pairs: tuple[int, str]) -> list[dict[str, object]]:
    return [{"send_time": t, "text": text} for t, text in pairs]


def test_a_clean_chat_passes() -> None:
    audit = Audit()
    _check(audit, [1, 2, 3], _msgs((1, "a"), (2, "b"), (3, "c"), (4, "d")))
    assert audit.ok
    assert (audit.acked, audit.stored, audit.stored_unacked) == (3, 4, 1)


def test_every_kind_of_fault_is_counted() -> None:
    audit = Audit()
    _check(audit, [1, 2, 2, 9], _msgs((1, "a"), (3, "a"), (2, "b")))
    assert (audit.lost, audit.duplicated, audit.out_of_order, audit.acked_twice) == (1, 1, 1, 1)
    assert not audit.ok
    assert "FAILED" in audit.line()


def test_acks_are_read_per_chat(tmp_path: Path) -> None:
    path = tmp_path / "acks.txt"
    path.write_text("a:b 5\na:b 7\nc:d 1\n")
    assert read_acks([path, tmp_path / "missing.txt"]) == {"a:b": [5, 7], "c:d": [1]}
