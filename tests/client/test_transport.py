"""The API key as the client sends it: surrounding whitespace stripped, a key no header can carry
refused up front, and never a key or its secret in an error's message."""

from __future__ import annotations

import uuid

import pytest

from qrt_client import AsyncClient, Client, InvalidKey, QrtError, TransportError
from qrt_client.transport import check_key, redacted
from tests.support.dev import DevServer
from tests.support.mesh import free_port


def test_a_key_with_surrounding_whitespace_is_sent_without_it(secured):
    server, key = secured
    for pasted in (f"{key} ", f"{key}\n", f"\t {key}\r\n"):
        with Client(server.url, pasted) as client:
            assert client.jobs(limit=1).count >= 0  # the platform knew the key


@pytest.mark.parametrize(
    ("key", "what"),
    [
        ("qrt_0123456789abcdef_XyZ ZyX", "a space at position 25"),
        ("qrt_0123456789abcdef_XyZ\nZyX", "(U+000A) at position 25"),
        ("qrt_0123456789abcdef_XéZyX", "U+00E9 (not ASCII) at position 23"),
        ("qrt_0123456789abcdef_XyZZyX\x00", "(U+0000) at position 28"),
    ],
)
def test_a_key_no_header_can_carry_is_refused_naming_the_character_not_the_key(
    qrt_dev: DevServer, key: str, what: str
):
    with pytest.raises(InvalidKey) as refused:
        Client(qrt_dev.url, key)
    assert what in str(refused.value) and "qrt_<id>_<secret>" in str(refused.value)
    assert "0123456789abcdef" not in str(refused.value) and "XyZ" not in str(refused.value)
    assert isinstance(refused.value, QrtError) and isinstance(refused.value, ValueError)
    with pytest.raises(InvalidKey):
        AsyncClient(qrt_dev.url, key)


def test_a_blank_key_is_no_key():
    assert check_key("  \n") is None and check_key(None) is None


def test_an_unreachable_platform_names_no_key():
    secret = uuid.uuid4().hex
    key = f"qrt_0123456789abcdef_{secret}"
    with (
        Client(f"http://127.0.0.1:{free_port()}", key, retries=0) as client,
        pytest.raises(TransportError) as failed,
    ):
        client.jobs()
    assert secret not in str(failed.value) and key not in repr(failed.value)


def test_redacted_leaves_out_the_key_and_its_secret():
    key = "qrt_0123456789abcdef_" + "s" * 43
    said = f"Illegal header value b'Bearer {key} ' (secret {'s' * 43})"
    assert redacted(said, key) == "Illegal header value b'Bearer <API key> ' (secret <secret>)"
    assert redacted(said, None) == said
