"""The record and option helpers made faster for small registrations keep their meaning."""

from __future__ import annotations

import dataclasses
import io
import json
from pathlib import Path

import pytest
from cachelib import SimpleCache

from dfc_transform import FileService
from dfc_transform.options import FileOptions
from dfc_transform.store.records import (
    TOKEN_LENGTH,
    FileRecord,
    dump_record,
    is_token,
    load_record,
    new_token,
)

RECORD = FileRecord(
    token=new_token(),
    size=3,
    chunk_size=1024,
    mime_type="image/png",
    filename="plot.png",
    download=False,
    one_time=True,
    sandbox=True,
    created=1.5,
    expires=None,
    path="/srv/plot.png",
    path_host="host",
    path_mtime_ns=7,
    chunked=False,
)


def test_record_json_is_asdict() -> None:
    dumped = dump_record(RECORD)
    flat = dataclasses.asdict(RECORD)
    flat["inline"] = False  # whether the content follows the JSON line
    assert json.loads(dumped) == flat
    assert list(json.loads(dumped)) == [f.name for f in dataclasses.fields(FileRecord)]
    assert load_record(dumped) == RECORD


def test_a_small_file_travels_in_its_record() -> None:
    small = dataclasses.replace(RECORD, size=5, inline=b"a\nb\x00c", chunked=True)
    small = dataclasses.replace(small, size=len(b"a\nb\x00c"))
    assert load_record(dump_record(small)) == small
    assert load_record(dump_record(small)[:-1]) is None  # cut short: never a short file


@pytest.mark.parametrize("value", ["bytes", "path", "path-copied"])
def test_stored_record_round_trips(tmp_path: Path, value: str) -> None:
    path = tmp_path / "data.bin"
    path.write_bytes(b"x" * 3000)
    service = FileService(SimpleCache(threshold=0), chunk_size=1024, copy_paths=value == "path-copied")
    given = io.BytesIO(b"x" * 3000) if value == "bytes" else path
    record = service.add(given, FileOptions(filename="data.bin"))
    assert service.store.get(record.token) == record
    assert record.size == 3000
    assert record.chunked is (value != "path")
    assert (record.path is None) is (value == "bytes")


def test_options_over() -> None:
    mine = FileOptions(filename="a.png", download=None, one_time=True)
    defaults = FileOptions(
        filename="b.png", mime_type="image/png", download=True, one_time=False, sandbox=False
    )
    assert mine.over(defaults) == FileOptions("a.png", "image/png", True, True, False)
    assert FileOptions().over(defaults) == defaults
    assert mine.over(FileOptions()) == mine


@pytest.mark.parametrize(
    ("text", "shaped"),
    [
        ("A" * TOKEN_LENGTH, True),
        ("aZ09-_" * 3 + "abcd", True),
        ("A" * (TOKEN_LENGTH - 1), False),
        ("A" * (TOKEN_LENGTH + 1), False),
        ("A" * (TOKEN_LENGTH - 1) + "\n", False),
        ("A" * (TOKEN_LENGTH - 1) + ".", False),
        ("A" * (TOKEN_LENGTH - 1) + "é", False),
        ("A" * (TOKEN_LENGTH - 1) + "\u0663", False),  # a non-ASCII digit
        ("", False),
    ],
)
def test_token_shape(text: str, shaped: bool) -> None:
    assert is_token(text) is shaped


def test_new_tokens_have_the_shape() -> None:
    assert all(is_token(new_token()) for _ in range(200))
