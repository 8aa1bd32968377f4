"""SMTP sender against a real aiosmtpd on 127.0.0.1 (STARTTLS + AUTH), and local Maildir delivery."""

from __future__ import annotations

import dataclasses
import os
import stat
from pathlib import Path

import pytest
from servers import SmtpServer

from mailvoice.config import SmtpSettings
from mailvoice.errors import ConfigError, DeliveryError
from mailvoice.mail.smtp import deliver_to_maildir, send

RAW = (
    b"From: bot@example.org\r\nTo: owner@example.org\r\nSubject: transcript\r\n"
    b"Message-ID: <t1@example.org>\r\n\r\n" + b"line of text\r\n" * 2000
)


@pytest.mark.servers
async def test_starttls_auth_delivery_is_byte_exact(smtp_server: SmtpServer) -> None:
    result = await send(RAW, "bot@example.org", ["owner@example.org", "second@example.org"], smtp_server.settings())
    assert result.accepted == ("owner@example.org", "second@example.org") and result.refused == ()
    [got] = smtp_server.messages
    assert got.raw == RAW and got.tls and got.authenticated
    assert got.sender == "bot@example.org" and got.recipients == ("owner@example.org", "second@example.org")


@pytest.mark.servers
async def test_implicit_tls_delivery(tls_cert: tuple[Path, Path], monkeypatch: pytest.MonkeyPatch) -> None:
    from servers import SMTP_PASSWORD

    monkeypatch.setenv("MAILVOICE_TEST_SMTP_PASSWORD", SMTP_PASSWORD)
    server = SmtpServer(*tls_cert, tls="implicit")
    server.start()
    try:
        await send(RAW, "bot@example.org", ["owner@example.org"], server.settings())
        assert [m.raw for m in server.messages] == [RAW] and server.messages[0].tls
    finally:
        server.stop()


@pytest.mark.servers
@pytest.mark.parametrize(("mode", "permanent", "code"), [("tempfail", False, 451), ("permfail", True, 554)])
async def test_4xx_is_transient_and_5xx_permanent(
    smtp_server: SmtpServer, mode: str, permanent: bool, code: int
) -> None:
    smtp_server.handler.mode = mode  # type: ignore[assignment]
    with pytest.raises(DeliveryError) as err:
        await send(RAW, "bot@example.org", ["owner@example.org"], smtp_server.settings())
    assert err.value.permanent is permanent and err.value.code == code
    assert f"127.0.0.1:{smtp_server.port}" in str(err.value)
    assert smtp_server.messages == []


@pytest.mark.servers
async def test_dropped_connection_is_transient(smtp_server: SmtpServer) -> None:
    smtp_server.handler.mode = "drop"
    with pytest.raises(DeliveryError) as err:
        await send(RAW, "bot@example.org", ["owner@example.org"], smtp_server.settings())
    assert not err.value.permanent


@pytest.mark.servers
async def test_server_down_then_back(smtp_server: SmtpServer) -> None:
    smtp_server.stop()
    with pytest.raises(DeliveryError) as err:
        await send(RAW, "bot@example.org", ["owner@example.org"], smtp_server.settings())
    assert not err.value.permanent and err.value.code is None
    smtp_server.start()  # same port
    await send(RAW, "bot@example.org", ["owner@example.org"], smtp_server.settings())
    assert [m.raw for m in smtp_server.messages] == [RAW]


@pytest.mark.servers
async def test_no_starttls_offered_refuses_and_sends_nothing(plain_smtp_server: SmtpServer) -> None:
    settings = dataclasses.replace(plain_smtp_server.settings(), username="")
    with pytest.raises(DeliveryError, match="STARTTLS") as err:
        await send(RAW, "bot@example.org", ["owner@example.org"], settings)
    assert not err.value.permanent  # kept and retried: a config problem, or a downgrade attack on the path
    assert plain_smtp_server.messages == []


@pytest.mark.servers
async def test_untrusted_certificate_names_ca_file(smtp_server: SmtpServer) -> None:
    with pytest.raises(DeliveryError, match="ca_file") as err:
        await send(RAW, "bot@example.org", ["owner@example.org"], smtp_server.settings(ca_file=None))
    assert not err.value.permanent
    assert smtp_server.messages == []


@pytest.mark.servers
async def test_wrong_password_is_not_permanent_and_not_echoed(
    smtp_server: SmtpServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("MAILVOICE_TEST_SMTP_PASSWORD", "wrong-secret-77")
    with pytest.raises(DeliveryError, match="MAILVOICE_TEST_SMTP_PASSWORD") as err:
        await send(RAW, "bot@example.org", ["owner@example.org"], smtp_server.settings())
    assert not err.value.permanent and err.value.code == 535
    assert "wrong-secret-77" not in str(err.value)


@pytest.mark.servers
async def test_partial_refusal_returns_refused_without_error(smtp_server: SmtpServer) -> None:
    smtp_server.handler.refuse = {"gone@example.org"}
    result = await send(RAW, "bot@example.org", ["owner@example.org", "gone@example.org"], smtp_server.settings())
    assert result.accepted == ("owner@example.org",)
    [refusal] = result.refused
    assert refusal.recipient == "gone@example.org" and refusal.code == 550 and refusal.permanent
    assert [m.recipients for m in smtp_server.messages] == [("owner@example.org",)]


@pytest.mark.servers
async def test_all_recipients_refused_is_permanent(smtp_server: SmtpServer) -> None:
    smtp_server.handler.refuse = {"gone@example.org"}
    with pytest.raises(DeliveryError) as err:
        await send(RAW, "bot@example.org", ["gone@example.org"], smtp_server.settings())
    assert err.value.permanent and err.value.code == 550
    assert smtp_server.messages == []


@pytest.mark.servers
async def test_plaintext_only_on_loopback_with_opt_in(plain_smtp_server: SmtpServer) -> None:
    settings = plain_smtp_server.settings(tls="none", username="")
    with pytest.raises(ConfigError, match="allow_plaintext"):
        await send(RAW, "bot@example.org", ["owner@example.org"], settings)
    with pytest.raises(ConfigError, match="loopback"):
        await send(
            RAW,
            "bot@example.org",
            ["owner@example.org"],
            dataclasses.replace(settings, host="smtp.example.org", allow_plaintext=True),
        )
    await send(RAW, "bot@example.org", ["owner@example.org"], dataclasses.replace(settings, allow_plaintext=True))
    assert [m.raw for m in plain_smtp_server.messages] == [RAW]


@pytest.mark.parametrize("bad", ["owner@example.org\r\nRCPT TO:<x@evil.org>", "a b@example.org", "<x>", ""])
async def test_unsafe_addresses_are_refused_before_connecting(bad: str) -> None:
    settings = SmtpSettings(host="127.0.0.1", port=1, tls="starttls")
    with pytest.raises(DeliveryError) as err:
        await send(RAW, "bot@example.org", [bad], settings)
    assert err.value.permanent
    with pytest.raises(DeliveryError):
        await send(RAW, bad, ["owner@example.org"], settings)


async def test_no_smtp_host_is_a_config_error() -> None:
    with pytest.raises(ConfigError, match="deliver_to_maildir"):
        await send(RAW, "bot@example.org", ["owner@example.org"], SmtpSettings())


def test_deliver_to_maildir_is_atomic_and_private(tmp_path: Path) -> None:
    folder = tmp_path / "delivered"
    first = deliver_to_maildir(RAW, folder)
    second = deliver_to_maildir(b"Subject: 2\r\n\r\nx\r\n", folder)
    assert first.parent == folder / "new" and first != second
    assert first.read_bytes() == RAW
    assert stat.S_IMODE(first.stat().st_mode) == 0o600
    assert stat.S_IMODE((folder / "new").stat().st_mode) == 0o700
    assert os.listdir(folder / "tmp") == []
    assert sorted(os.listdir(folder / "new")) == sorted([first.name, second.name])
    assert ":" not in first.name and "/" not in first.name


def test_deliver_to_maildir_failure_is_a_delivery_error(tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("not a directory")
    with pytest.raises(DeliveryError, match=str(blocker)) as err:
        deliver_to_maildir(RAW, blocker)
    assert not err.value.permanent
