"""Review of the issue-12 fast paths: each one must write what the slow path writes."""

from __future__ import annotations

import asyncio
import json
import threading
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from opentelemetry.proto.collector.logs.v1.logs_service_pb2 import ExportLogsServiceRequest

from asynclog import LogEntry, formatters
from asynclog._entry import Entry
from asynclog.backends._otlp_encode import Codec, FastRequestBuilder, RequestBuilder
from asynclog.backends._relp import Frame, RelpProtocolError, parse_frames, response_code
from asynclog.backends._rfc5424 import STANDARD_LEVELS, Encoder, header_field, pri, timestamp
from asynclog.backends._wakeup import ThreadDone


class _Text(str):
    pass


class _Number(int):
    pass


def _reference(fields: dict[str, object]) -> str:
    """The slow path: the standard encoder, with what it cannot hold as its repr."""
    previous = formatters.fast_json_used()
    formatters.use_fast_json(False)
    try:
        padded = dict(fields)
        for i in range(formatters.SCALAR_FIELDS_LIMIT + 1 - len(fields)):
            padded[f"pad{i}"] = i  # past the small-fields limit: the encoder writes them
        text = formatters.fields_to_json(padded)
    finally:
        formatters.use_fast_json(previous)
    decoded = json.loads(text)
    return json.dumps({k: decoded[k] for k in fields}, ensure_ascii=False)


def test_small_fields_with_an_int_too_long_for_str_are_written_as_the_slow_path_writes() -> None:
    fields = {"user": "ann", "big": 10**5000}
    text = formatters.fields_to_json(fields)
    assert text == _reference(fields)
    assert json.loads(text) == {"user": "ann", "big": "<unrepresentable int: ValueError>"}


_TEXTS = st.text(st.characters(codec=None), max_size=40) | st.sampled_from(
    ["", "\ud800", "a\udc80b", "\x00\n\x7f\x85", 'q"]\\', "é\u2028", "x" * 300]
)
_VALUES = st.one_of(
    _TEXTS,
    st.integers(-(2**70), 2**70),
    st.floats(allow_nan=True),
    st.booleans(),
    st.none(),
    st.sampled_from([2**63 - 1, -(2**63), 2**63, 0, -1, 10**5000]),
    st.builds(_Text, _TEXTS),
    st.builds(_Number, st.integers()),
)


@settings(max_examples=400, deadline=None)
@given(st.dictionaries(_TEXTS.filter(lambda k: not k.startswith("pad")), _VALUES, max_size=8))
def test_small_fields_match_the_standard_encoder(fields: dict[str, object]) -> None:
    assert formatters.fields_to_json(fields) == _reference(fields)


_STAMPS = st.one_of(
    st.floats(allow_nan=True, allow_infinity=True),
    st.sampled_from([0.0, -1.0, 1e-10, 5e-10, 1.8e10, 1.8e10 - 1, 1764700000.123456789]),
)
_OTLP_FIELDS = st.dictionaries(_TEXTS, _VALUES, max_size=4)


@settings(max_examples=300, deadline=None)
@given(
    st.lists(
        st.tuples(
            _STAMPS,
            st.integers(0, 120),
            _TEXTS,
            st.sampled_from(["app", "b", "", "\ud800"]),
            _OTLP_FIELDS,
            st.just(None),
            st.just(None),
            st.just(None),
        ),
        max_size=4,
    ),
    st.integers(0, 2**64 - 1),
)
def test_otlp_records_written_by_hand_are_the_classes_bytes(
    batch: list[Entry], observed: int
) -> None:
    fast = FastRequestBuilder([], observed)
    fast.add(batch)
    reference = RequestBuilder([], observed)
    reference.add(batch)
    assert fast.serialize() == reference.serialize()


@settings(max_examples=300, deadline=None)
@given(
    st.floats(0, 4e9),
    st.sampled_from(sorted(STANDARD_LEVELS)),
    _TEXTS,
    st.sampled_from(["app", "", "a b", "\ud800"]),
    st.dictionaries(_TEXTS | st.integers(), _VALUES, max_size=4),
    st.booleans(),
)
def test_rfc5424_one_string_encoding_is_the_piece_by_piece_message(
    ts: float, level: int, message: str, logger: str, fields: dict[Any, Any], bom: bool
) -> None:
    encoder = Encoder(bom=bom, hostname="host", procid="7")
    entry = LogEntry(ts, level, message, logger, fields, None, None, None)
    app = header_field(logger, 48)
    body = encoder.message_text(entry)
    expected = (
        f"<{pri(1, level)}>1 {timestamp(ts)} host {app} 7 - {encoder.structured_data(entry)}"
    ).encode() + ((b" " + (b"\xef\xbb\xbf" if bom else b"") + body.encode()) if body else b"")
    assert encoder.encode(tuple(entry)) == expected


@pytest.mark.parametrize(
    ("reads", "frames"),
    [
        ([b"1 rsp 6 200 OK\n2 rsp 6 200 OK\n3 rsp 6 200 OK\n"], [1, 2, 3]),
        ([b"1 rsp 6 20", b"0 OK", b"\n"], [1]),
        ([b"1 rsp 6 200 OK\n2 rsp 6 2", b"00 OK\n"], [1, 2]),
        ([b"01 rsp 6 200 OK\n"], [1]),
    ],
)
def test_relp_acks_split_or_together_are_each_taken_once(
    reads: list[bytes], frames: list[int]
) -> None:
    buffer = bytearray()
    taken: list[Frame] = []
    for data in reads:
        buffer += data
        taken += parse_frames(buffer)
    assert taken == [(number, b"rsp", b"200 OK") for number in frames]
    assert buffer == bytearray()


def test_relp_an_ack_with_more_after_ok_is_malformed() -> None:
    with pytest.raises(RelpProtocolError, match="does not end with a newline"):
        parse_frames(bytearray(b"6 rsp 6 200 OKX\n"))


def test_relp_a_refusal_keeps_its_code_and_reason() -> None:
    ((number, command, data),) = parse_frames(bytearray(b"4 rsp 12 500 no space\n"))
    assert (number, command) == (4, b"rsp")
    assert response_code(data) == (500, "no space")


def test_otlp_an_int_too_long_for_str_is_written_as_a_placeholder_not_a_failed_batch() -> None:
    request = ExportLogsServiceRequest.FromString(
        Codec({}).encode([(1.0, 20, "m", "app", {"big": 10**5000, "n": 1}, None, None, None)])
    )
    (record,) = request.resource_logs[0].scope_logs[0].log_records
    values = {kv.key: kv.value for kv in record.attributes}
    assert values["big"].string_value == "<unrepresentable int: ValueError>"
    assert values["n"].int_value == 1


async def _wait_reporting(done: ThreadDone) -> object:
    try:
        await done
    except asyncio.CancelledError:
        return ("cancelled", await done.continuing())
    return "finished"


@pytest.mark.parametrize("when", ["before the thread ends", "twice", "after the thread ended"])
@pytest.mark.parametrize("fails", [False, True])
async def test_thread_done_cancelled_still_tells_how_the_thread_ended(
    when: str, fails: bool
) -> None:
    done = ThreadDone(asyncio.get_running_loop())
    go = threading.Event()

    def work() -> None:
        go.wait()
        done.finish_threadsafe(OSError("disk full") if fails else None)

    thread = threading.Thread(target=work)
    thread.start()
    waiter = asyncio.create_task(_wait_reporting(done))
    await asyncio.sleep(0)
    if when == "after the thread ended":
        go.set()
        thread.join()  # its wake-up is queued on the loop, not run yet
        waiter.cancel()
    else:
        waiter.cancel()
        if when == "twice":
            waiter.cancel()
        go.set()
    assert await waiter == ("cancelled", not fails)
    thread.join()


async def test_thread_done_raises_what_the_thread_raised() -> None:
    done = ThreadDone(asyncio.get_running_loop())
    thread = threading.Thread(target=done.finish_threadsafe, args=(OSError("disk full"),))
    thread.start()
    with pytest.raises(OSError, match="disk full"):
        await done
    thread.join()


def test_thread_done_finishing_after_the_loop_closed_is_quiet() -> None:
    loop = asyncio.new_event_loop()
    done = ThreadDone(loop)
    loop.close()
    thread = threading.Thread(target=done.finish_threadsafe)
    thread.start()
    thread.join()
    assert not done.done()
