"""The fast hex-string reader against pyHanko's own, on random and adversarial input.

Differential: for every input, at every stream offset, both readers must give the same value, the
same type and encoding, leave the stream at the same position, or raise the same error. Also:
nothing is replaced at import, and the installed reader is pyHanko's outside
``fast_pdf_reading``.
"""

from __future__ import annotations

import io
import subprocess
import sys

import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st
from pyhanko.pdf_utils import generic

from signing.pdf import fasthex as fastpaths

HEX = b"0123456789abcdefABCDEF"
WHITE = b" \n\r\t\x0c\x00"
CHUNK = 1 << 16  # the reader's chunk size: long strings cross it


def _original():
    """pyHanko's reader, whether or not the fast one is installed."""
    current = generic.read_hex_string_from_stream
    return getattr(current, "__wrapped__", current)


def _outcome(read, data: bytes, offset: int):
    stream = io.BytesIO(data)
    stream.seek(offset)
    try:
        value = read(stream)
    except Exception as exc:  # noqa: BLE001 - the error itself is compared
        return ("error", type(exc).__name__, str(exc), stream.tell())
    encoding = getattr(value, "autodetected_encoding", None)
    return (type(value).__name__, bytes(value.original_bytes), value, encoding, stream.tell())


def _same(data: bytes, offset: int = 0) -> None:
    original = _original()
    fast = _outcome(lambda s: fastpaths.read_hex_string(s, original), data, offset)
    assert fast == _outcome(original, data, offset), data[offset : offset + 80]


_tokens = st.one_of(
    st.binary(min_size=1, max_size=8).map(lambda b: bytes(HEX[x % len(HEX)] for x in b)),
    st.binary(min_size=1, max_size=3).map(lambda b: bytes(WHITE[x % len(WHITE)] for x in b)),
    st.sampled_from([b">", b"<", b"%", b"%c\n", b"%c\r", b"\r\n", b"x", b"\xff", b"(", b">>"]),
)
adversarial = st.lists(_tokens, max_size=40).map(lambda parts: b"<" + b"".join(parts))


@st.composite
def long_strings(draw) -> bytes:
    """Hex strings around the chunk size, ending well, badly, or not at all."""
    unit = draw(st.sampled_from([b"ab", b"0F", b"a", b"a b\n", b"\x00\x00cd"]))
    length = draw(st.integers(CHUNK - 40, CHUNK + 40))
    body = (unit * (length // len(unit) + 1))[:length]
    end = draw(st.sampled_from([b">", b"> tail", b"", b"%x\nab>", b"z>", b"<cd>"]))
    return b"<" + body + end


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.binary(max_size=200))
@example(data=b"")
@example(data=b"<")
@example(data=b"<>")
def test_random_bytes(data):
    _same(data)
    _same(b"<" + data)


@settings(max_examples=600, deadline=None)
@given(data=adversarial, prefix=st.binary(max_size=12), tail=st.binary(max_size=12))
@example(data=b"<ab%comment > here\ncd>", prefix=b"", tail=b"")
@example(data=b"<FEFF00410042>", prefix=b"", tail=b"")  # UTF-16 BOM: a text string
@example(data=b"<EFBBBF41>", prefix=b"", tail=b"")  # UTF-8 BOM
@example(data=b"< a b\n\r\t\x0c\x00c d >", prefix=b"", tail=b"")
@example(data=b"<abc", prefix=b"", tail=b"")
def test_adversarial_strings(data, prefix, tail):
    """Mixed hex digits, white space, comments, stray bytes and nested brackets, at an offset."""
    _same(prefix + data + tail, len(prefix))


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=long_strings())
def test_strings_across_chunks(data):
    _same(data)


def test_installed_reader_is_pyhankos_outside_the_block():
    assert fastpaths.install_fast_paths()
    assert fastpaths.install_fast_paths()  # idempotent
    assert fastpaths.fast_paths_installed()
    installed = generic.read_hex_string_from_stream
    original = installed.__wrapped__
    for data in (b"<ab>", b"<a b%c\ncd>", b"<zz>", b"<" + b"01" * CHUNK + b">"):
        expected = _outcome(original, data, 0)
        assert _outcome(installed, data, 0) == expected  # outside: pyHanko's code
        with fastpaths.fast_pdf_reading():
            assert _outcome(installed, data, 0) == expected  # inside: the fast reader


def test_the_fast_reader_is_scoped_to_its_task():
    """A context variable: another thread (or task) outside the block reads with pyHanko's."""
    import threading

    assert fastpaths.install_fast_paths()
    seen: list[bool] = []

    def elsewhere() -> None:
        seen.append(fastpaths._ACTIVE.get())

    with fastpaths.fast_pdf_reading():
        thread = threading.Thread(target=elsewhere)
        thread.start()
        thread.join()
        assert fastpaths._ACTIVE.get()
    assert seen == [False] and not fastpaths._ACTIVE.get()


@pytest.mark.parametrize("code", ["import signing", "import signing.validation.pdf"])
def test_nothing_is_installed_at_import(code):
    """Importing the signing modules replaces nothing in pyHanko."""
    check = (
        f"{code}\n"
        "import pkgutil, importlib, signing\n"
        "for info in pkgutil.walk_packages(signing.__path__, 'signing.'):\n"
        "    importlib.import_module(info.name)\n"
        "from pyhanko.pdf_utils import generic\n"
        "assert not hasattr(generic.read_hex_string_from_stream, '__wrapped__')\n"
    )
    subprocess.run([sys.executable, "-c", check], check=True, timeout=120)
