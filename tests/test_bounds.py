"""`max_entry_bytes` and `max_queue_bytes` hold whatever the fields are: values of any type
(measured as written, not guessed from their type), str subclasses, keys, many fields."""

from __future__ import annotations

import datetime
import json
import uuid
from pathlib import Path
from typing import Any

import pytest

from asynclog import Config, FileConfig, LogManager

from .conftest import GateBackend, RecordingBackend, assert_settled, read_lines

LIMIT = 1024


def cut(text: str, room: int = LIMIT) -> str:
    """`text` (ASCII) cut to `room` bytes the documented way: its first `room - 48` bytes, then
    the marker."""
    kept = room - 48
    return f"{text[:kept]}...[truncated {len(text) - kept} bytes]"


async def write_fields(path: Path, fmt: str, **fields: Any) -> str:
    """Write one entry `m` with `fields` to a file in format `fmt`; its line."""
    config = Config(
        backend="file",
        name="app",
        max_entry_bytes=LIMIT,
        backend_config=FileConfig(file_path=path, format=fmt),
    )
    async with LogManager(config) as lm:
        await lm.info("m", **fields)
    assert_settled(lm.get_stats())
    (line,) = read_lines(path)
    return line


def text_fields(line: str) -> str:
    """What a text line writes after `<time> INFO app m `."""
    head, rest = line.split(" ", 1)
    assert len(head) == 27 and rest.startswith("INFO app m ")
    return rest[len("INFO app m ") :]


def json_fields(line: str) -> dict[str, Any]:
    decoded = json.loads(line)
    assert decoded["message"] == "m"
    fields: dict[str, Any] = decoded["fields"]
    return fields


class BigRepr:
    def __repr__(self) -> str:
        return "r" * 1_000_000


class SmallStrBigRepr:
    """The text formats write its str(), the JSON ones its repr()."""

    def __str__(self) -> str:
        return "small"

    def __repr__(self) -> str:
        return "R" * 1_000_000


class Lying(str):
    """A str subclass whose len() says it is empty."""

    def __len__(self) -> int:
        return 0


class StrAsLying:
    def __str__(self) -> str:
        return Lying("z" * 1_000_000)

    __repr__ = __str__


ONE_MB_LIST = ["x" * 1_000_000]
ONE_MB_DICT = {"k": "y" * 1_000_000}
ONE_MB_NESTED = {"outer": [{"inner": ("n" * 1_000_000,)}]}


@pytest.mark.parametrize(
    ("value", "rendered"),
    [
        (ONE_MB_LIST, str(ONE_MB_LIST)),
        (ONE_MB_DICT, str(ONE_MB_DICT)),
        (ONE_MB_NESTED, str(ONE_MB_NESTED)),
        (tuple(range(200_000)), str(tuple(range(200_000)))),
        (BigRepr(), "r" * 1_000_000),
        (StrAsLying(), "z" * 1_000_000),
        (b"b" * 1_000_000, repr(b"b" * 1_000_000)),
    ],
    ids=["list", "dict", "nested", "tuple", "big-repr", "str-returns-lying-subclass", "bytes"],
)
@pytest.mark.parametrize("fmt", ["text", "json"])
async def test_a_value_of_any_type_is_written_cut_to_max_entry_bytes(
    tmp_path: Path, fmt: str, value: object, rendered: str
) -> None:
    line = await write_fields(tmp_path / "a.log", fmt, v=value)
    expected = cut(rendered)
    assert len(expected) <= LIMIT
    if fmt == "text":
        assert text_fields(line) == 'v="' + expected.replace('"', '\\"') + '"'
    else:
        assert json_fields(line) == {"v": expected}
    # Before: the whole 1,000,000-byte rendering was written.
    assert len(line.encode()) <= LIMIT + 200


@pytest.mark.parametrize("fmt", ["text", "json"])
async def test_a_value_measured_by_its_json_too(tmp_path: Path, fmt: str) -> None:
    """Its str() is short but the JSON formats would write its 1 MB repr(): it is stored as
    its str(), the same in both."""
    line = await write_fields(tmp_path / "a.log", fmt, v=SmallStrBigRepr(), n=1)
    if fmt == "text":
        assert text_fields(line) == "v=small n=1"
    else:
        assert json_fields(line) == {"v": "small", "n": 1}
        assert len(line.encode()) < 200


@pytest.mark.parametrize("fmt", ["text", "json"])
async def test_a_str_subclass_is_cut_even_when_its_len_lies(tmp_path: Path, fmt: str) -> None:
    line = await write_fields(tmp_path / "a.log", fmt, v=Lying("s" * 1_000_000))
    expected = cut("s" * 1_000_000)
    if fmt == "text":
        assert text_fields(line) == f'v="{expected}"'
    else:
        assert json_fields(line) == {"v": expected}


async def test_a_str_subclass_reaches_the_backend_as_a_plain_str() -> None:
    backend = RecordingBackend()
    async with LogManager(Config(backend=backend, max_entry_bytes=LIMIT)) as lm:
        await lm.info("m", v=Lying("short"), w=Lying("s" * 5000))
    (entry,) = backend.entries
    assert [type(value) for value in entry.fields.values()] == [str, str]
    assert dict(entry.fields) == {"v": "short", "w": cut("s" * 5000)}


@pytest.mark.parametrize("fmt", ["text", "json"])
async def test_a_huge_key_is_cut_to_256_bytes(tmp_path: Path, fmt: str) -> None:
    fields = {"k" * 1_000_000: 1, Lying("q" * 10_000): 2}
    line = await write_fields(tmp_path / "a.log", fmt, **fields)
    first, second = cut("k" * 1_000_000, 256), cut("q" * 10_000, 256)
    assert len(first) <= 256 and len(second) <= 256
    if fmt == "text":  # the text format writes a key's spaces as "_"
        assert text_fields(line) == f"{first.replace(' ', '_')}=1 {second.replace(' ', '_')}=2"
    else:
        assert json_fields(line) == {first: 1, second: 2}
    assert len(line.encode()) < 700


@pytest.mark.parametrize("fmt", ["text", "json"])
async def test_large_values_share_the_room_and_small_ones_stay_whole(
    tmp_path: Path, fmt: str
) -> None:
    """All fields together get 2 x max_entry_bytes (keys, values, 8 bytes each for the
    separators): 2048 - (1 + 1 + 4 + 1 + 4 x 8) = 2009 bytes for the values; "u1" and 7
    take 3, so the two large values get 1003 each (not 1024)."""
    line = await write_fields(tmp_path / "a.log", fmt, a="x" * 5000, b=["y" * 5000], user="u1", n=7)
    a, b = cut("x" * 5000, 1003), cut(str(["y" * 5000]), 1003)
    if fmt == "text":
        assert text_fields(line) == f'a="{a}" b="{b}" user=u1 n=7'
    else:
        assert json_fields(line) == {"a": a, "b": b, "user": "u1", "n": 7}
    assert len(text_fields(line) if fmt == "text" else line) <= 2 * LIMIT + 100


@pytest.mark.parametrize("fmt", ["text", "json"])
async def test_too_many_fields_keeps_the_first_and_says_how_many_were_dropped(
    tmp_path: Path, fmt: str
) -> None:
    """10,000 fields of 100 bytes. Each field kept needs its key, 8 bytes and its value (up
    to 128 bytes): k0..k9 need 110, k10.. 111. With 64 bytes kept for the note, 2048 - 64 =
    1984 >= 10 x 110 + 7 x 111 = 1877: the first 17 stay whole."""
    fields = {f"k{index}": "v" * 100 for index in range(10_000)}
    line = await write_fields(tmp_path / "a.log", fmt, **fields)
    kept = {f"k{index}": "v" * 100 for index in range(17)}
    dropped_bytes = sum(len(f"k{index}") + 100 for index in range(17, 10_000))
    note = f"[dropped 9983 fields, {dropped_bytes} bytes]"
    if fmt == "text":
        expected = " ".join(f"{key}={value}" for key, value in kept.items())
        assert text_fields(line) == f'{expected} ...="{note}"'
    else:
        assert json_fields(line) == {**kept, "...": note}
    # Before: every field was written, 1,068,933 bytes (text) and 1,129,020 (JSON).
    assert len(line.encode()) <= 2 * LIMIT + 100


async def test_a_users_own_dotted_key_is_not_overwritten_by_the_note() -> None:
    backend = RecordingBackend()
    fields = {"...": "mine", **{f"k{index}": "v" * 100 for index in range(100)}}
    async with LogManager(Config(backend=backend, max_entry_bytes=256)) as lm:
        await lm.info("m", **fields)
    (entry,) = backend.entries
    assert entry.fields["..."] == "mine"
    assert entry.fields["...."].startswith("[dropped ")


async def test_small_scalar_fields_pass_unchanged() -> None:
    backend = RecordingBackend()
    fields = {"a": 1, "b": "x" * 200, "c": 2.5, "d": True, "e": None, "f": -(2**63)}
    async with LogManager(Config(backend=backend, max_entry_bytes=LIMIT)) as lm:
        await lm.info("m", **fields, tags=["a", "b"], nested={"k": 1.5})
    (entry,) = backend.entries
    assert dict(entry.fields) == {**fields, "tags": ["a", "b"], "nested": {"k": 1.5}}


async def _count_accepted(config: Config, log: Any) -> int:
    """How many entries a byte-bounded queue takes while its backend is stalled (the first
    entry is in the worker's hands), before a call returns False (a full queue)."""
    backend = config.backend
    assert isinstance(backend, GateBackend)
    lm = LogManager(config)
    await lm.start()
    await lm.info("in the worker's hands")
    await backend.writing.wait()
    accepted = 0
    for _ in range(200):
        if not await log(lm):  # the default (raise_errors=False): a refused call says False
            break
        accepted += 1
    backend.release()
    await lm.close()
    assert_settled(lm.get_stats())
    return accepted


def stalled(**settings: Any) -> Config:
    return Config(
        backend=GateBackend(),
        async_mode=True,
        put_timeout=0,
        queue_size=10_000,
        max_queue_bytes=64 * 1024,
        **settings,
    )


async def test_the_queue_counts_a_list_field_by_what_is_kept_of_it() -> None:
    """Each entry keeps its 1 MB list as 16 kB of text: about 16.7 kB with the entry, so 3
    fit in 64 KiB. Before: the list counted 0 bytes and all 200 were queued (about 200 MiB)."""

    async def log(lm: LogManager) -> bool:
        return await lm.info("m", v=[f"{index:0999d}" for index in range(1000)])

    assert await _count_accepted(stalled(max_entry_bytes=16_384), log) == 3


async def test_the_queue_counts_what_a_value_holds_not_what_it_writes() -> None:
    """A 100 kB int writes a short placeholder (str() refuses 240,000 digits by default)
    but holds 100 kB: the queue takes one such entry (an empty queue takes any entry), then
    is full. Before: it counted 0 bytes."""

    async def log(lm: LogManager) -> bool:
        return await lm.info("m", v=1 << 800_000)

    assert await _count_accepted(stalled(), log) == 1


async def test_the_queue_counts_the_traceback() -> None:
    """Each traceback holds about 30 kB: two fit in 64 KiB. Before: it counted 0 bytes.
    (priority_level=None: an ERROR entry would otherwise go to the reserve.)"""

    async def log(lm: LogManager) -> bool:
        try:
            raise ValueError("e" * 30_000)
        except ValueError:
            return await lm.exception("failed")

    assert await _count_accepted(stalled(priority_level=None), log) == 2


class HugeNameZone(datetime.tzinfo):
    """A tzinfo whose repr (part of a datetime's repr) is 1 MB."""

    def utcoffset(self, dt: datetime.datetime | None) -> datetime.timedelta:
        return datetime.timedelta(hours=1)

    def dst(self, dt: datetime.datetime | None) -> datetime.timedelta:
        return datetime.timedelta(0)

    def tzname(self, dt: datetime.datetime | None) -> str:
        return "odd"

    def __repr__(self) -> str:
        return "z" * 1_000_000


@pytest.mark.parametrize("fmt", ["text", "json"])
async def test_a_datetime_is_measured_unless_its_text_is_short_by_construction(
    tmp_path: Path, fmt: str
) -> None:
    """A naive, UTC or fixed datetime writes a short text; one with another tzinfo is measured:
    this one's repr (what the JSON formats write) is 1 MB, so it is stored as its str()."""
    odd = datetime.datetime(2026, 1, 2, 3, 4, 5, tzinfo=HugeNameZone())
    plain = datetime.datetime(2026, 1, 2, 3, 4, 5)
    ident = uuid.UUID(int=7)
    line = await write_fields(tmp_path / "a.log", fmt, odd=odd, plain=plain, id=ident)
    if fmt == "text":
        assert text_fields(line) == (
            f'odd="2026-01-02 03:04:05+01:00" plain="2026-01-02 03:04:05" id={ident}'
        )
    else:
        assert json_fields(line) == {
            "odd": "2026-01-02 03:04:05+01:00",
            "plain": repr(plain),
            "id": repr(ident),
        }
    assert len(line.encode()) < 300


async def test_short_values_reach_the_backend_as_they_were_given() -> None:
    backend = RecordingBackend()
    ident, when = uuid.UUID(int=7), datetime.datetime(2026, 1, 2, tzinfo=datetime.UTC)
    tags = ["a", "b"]
    request = {"method": "GET", "headers": {"host": "example.org"}, "ids": [1, 2, 3]}
    async with LogManager(Config(backend=backend, max_entry_bytes=LIMIT)) as lm:
        await lm.info("m", id=ident, when=when, tags=tags, request=request)
    (entry,) = backend.entries
    assert entry.fields["id"] is ident and entry.fields["when"] is when
    # Containers arrive as frozen copies of the same type (see tests/test_freeze.py).
    assert entry.fields["tags"] == tags and type(entry.fields["tags"]) is list
    assert entry.fields["request"] == request and entry.fields["request"] is not request


@pytest.mark.parametrize("message", [StrAsLying(), Lying("z" * 1_000_000)])
async def test_a_message_whose_str_lies_about_its_length_is_cut(message: object) -> None:
    backend = RecordingBackend()
    async with LogManager(Config(backend=backend, max_entry_bytes=LIMIT)) as lm:
        await lm.info(message)
        await lm.write_log("INFO", message)
    assert [type(entry.message) for entry in backend.entries] == [str, str]
    assert [entry.message for entry in backend.entries] == [cut("z" * 1_000_000)] * 2
