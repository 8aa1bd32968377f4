"""The Matrix bot: one account, its owners' rooms, each voice message answered exactly once in its thread.

Order per voice message: ledger check -> download (capped) -> decode + transcribe (ASR thread) -> send the reply
with a transaction id derived from the event -> ledger row + sealed transcript in one store transaction. The sync
token is saved only after every event of its batch is recorded, so a crash replays the batch: the ledger skips
what was done, and a reply sent just before the crash is resent under the same transaction id, which the
homeserver answers with the event it already has (no second reply).
"""

from __future__ import annotations

import asyncio
import hashlib
import html
import json
import logging
from typing import TYPE_CHECKING, Any

from nio import (
    AsyncClient,
    AsyncClientConfig,
    DownloadError,
    InviteMemberEvent,
    LoginResponse,
    RoomSendResponse,
    SyncResponse,
)

from mailvoice.backoff import Backoff
from mailvoice.chat.events import AudioMessage, as_object, notice, threaded, txn_id
from mailvoice.chat.session import Session, load_session, save_session, session_path
from mailvoice.config import is_loopback, read_secret
from mailvoice.crashpoints import crashpoint
from mailvoice.errors import AudioError, ConfigError, EngineError, Quarantine, SourceError

if TYPE_CHECKING:
    from mailvoice.config import MatrixSettings, Settings
    from mailvoice.engines.base import AsrEngine
    from mailvoice.engines.executor import ModelWorker
    from mailvoice.store import Store
    from mailvoice.types import Transcript

log = logging.getLogger(__name__)
HELP = (
    "I transcribe voice messages in the rooms my owners invite me to and answer in the message's thread "
    "(uncertain words are marked [like this?]). Commands in a room of an owner and me: !help, !summary "
    "(the last 24 hours of mail)."
)
_FILTER = {"room": {"timeline": {"limit": 50}}, "presence": {"not_types": ["*"]}}


class MatrixBot:
    """One `[[matrix]]` account; the ASR engine and its thread are shared with the caller."""

    def __init__(
        self, settings: Settings, account: MatrixSettings, store: Store, asr: AsrEngine, worker: ModelWorker
    ) -> None:
        self.settings = settings
        self.account = account
        self.ledger_account = f"matrix:{account.name}"
        self.store = store
        self.asr = asr
        self.worker = worker
        self.path = session_path(settings.general.data_dir, account.name)
        self.session: Session | None = None
        host = account.homeserver.split("://", 1)[-1].split("/", 1)[0].rsplit(":", 1)[0].strip("[]")
        if not account.homeserver.startswith("https://") and not (
            account.homeserver.startswith("http://") and is_loopback(host)
        ):
            raise ConfigError(
                f"matrix {account.name}: homeserver = {account.homeserver!r} must be https:// "
                "(plain http:// only for a loopback host)"
            )
        self.client = AsyncClient(
            account.homeserver,
            account.user_id,
            device_id=account.device_id or None,
            config=AsyncClientConfig(store_sync_tokens=False, encryption_enabled=False, request_timeout=60),
        )

    async def login(self) -> Session:
        """Restore the saved device, else log in once (password) or take the configured token."""
        account = self.account
        saved = await asyncio.to_thread(load_session, self.path)
        if saved is not None and saved.user_id == account.user_id:
            session = saved
        elif account.access_token_env or account.access_token_file:
            token = read_secret(f"matrix {account.name}", account.access_token_env, account.access_token_file)
            if not account.device_id:
                raise ConfigError(f"matrix {account.name}: an access token needs its device_id setting")
            session = Session(account.user_id, account.device_id, token)
        else:
            password = read_secret(f"matrix {account.name}", account.password_env, account.password_file)
            response = await self.client.login(password=password, device_name=account.device_name)
            if not isinstance(response, LoginResponse):
                raise SourceError(
                    f"matrix {account.name}: login as {account.user_id} at {account.homeserver} failed "
                    f"({getattr(response, 'status_code', '')} {getattr(response, 'message', response)})"
                )
            session = Session(response.user_id, response.device_id, response.access_token)
        self.client.restore_login(session.user_id, session.device_id, session.access_token)
        await asyncio.to_thread(save_session, self.path, session)
        self.session = session
        log.info("matrix %s: logged in as device %s", account.name, session.device_id)
        return session

    async def run(self, *, ready: asyncio.Event | None = None) -> None:
        """Sync until cancelled; errors back off and retry from the last fully handled batch."""
        session = self.session or await self.login()
        backoff = Backoff(base=1.0, cap=60.0)
        first = True
        try:
            while True:
                timeout = 0 if first else int(self.account.sync_timeout * 1000)
                response = await self.client.sync(
                    timeout=timeout, since=session.next_batch or None, sync_filter=_FILTER
                )
                if not isinstance(response, SyncResponse):
                    delay = backoff.next_delay()
                    log.warning("matrix %s: sync failed (%s); retrying in %.0f s", self.account.name, response, delay)
                    await asyncio.sleep(delay)
                    continue
                try:
                    await self._handle(response)
                except (SourceError, OSError) as exc:
                    delay = backoff.next_delay()
                    log.warning("matrix %s: %s; batch replayed in %.0f s", self.account.name, exc, delay)
                    await asyncio.sleep(delay)
                    continue
                backoff.reset()
                session = session.with_batch(response.next_batch)
                await asyncio.to_thread(save_session, self.path, session)
                self.session = session
                if first and ready is not None:
                    ready.set()
                first = False
        finally:
            await self.client.close()

    async def _handle(self, response: SyncResponse) -> None:
        for room_id, invite in response.rooms.invite.items():
            await self._invited(room_id, invite.invite_state)
        for room_id, info in response.rooms.join.items():
            for event in info.timeline.events:
                source = getattr(event, "source", None)
                if not isinstance(source, dict):
                    continue
                try:
                    await self._event(room_id, source)
                except _Forbidden as exc:  # kicked or muted meanwhile: replaying the batch would never succeed
                    log.warning("matrix %s: %s; event skipped", self.account.name, exc)

    async def _invited(self, room_id: str, state: list[Any]) -> None:
        me = self.account.user_id
        # nio keeps only type, state_key and sender in an invite event's source: read its parsed fields.
        inviter = next(
            (
                e.sender
                for e in state
                if isinstance(e, InviteMemberEvent) and e.state_key == me and e.membership == "invite"
            ),
            None,
        )
        types = [as_object(getattr(e, "source", None)).get("type") for e in state]
        encrypted = "m.room.encryption" in types
        if inviter not in self.account.owners:
            log.info("matrix %s: invite to a room by a non-owner rejected", self.account.name)
            await self.client.room_leave(room_id)
            return
        if encrypted:
            log.info("matrix %s: invite to an encrypted room declined (no end-to-end encryption)", self.account.name)
            await self.client.room_leave(room_id)
            return
        await self.client.join(room_id)
        log.info("matrix %s: joined a room on an owner's invite", self.account.name)

    async def _event(self, room_id: str, source: dict[str, Any]) -> None:
        if source.get("sender") == self.account.user_id:
            return
        if source.get("type") == "m.room.encryption":
            await self._send(room_id, str(source.get("event_id", "")), "encrypted", notice(_ENCRYPTED))
            await self.client.room_leave(room_id)
            return
        content = as_object(source.get("content"))
        body = content.get("body") if content.get("msgtype") == "m.text" else None
        command = body.strip().lower() if isinstance(body, str) else ""
        if command in ("!help", "!summary") and source.get("sender") in self.account.owners and self._direct(room_id):
            event_id = str(source.get("event_id", ""))
            text = HELP if command == "!help" else await asyncio.to_thread(self._summary_text)
            await self._send(room_id, event_id, command[1:], notice(text))
            return
        message = AudioMessage.parse(room_id, source)
        if message is not None and message.event_id:
            await self._voice(message)

    def _direct(self, room_id: str) -> bool:
        """A room of the bot and one owner: commands answer there only (a summary is for its owner's eyes)."""
        room = self.client.rooms.get(room_id)
        return room is not None and room.member_count <= 2

    def _summary_text(self) -> str:
        """The last 24 hours of every mail account, as the spoken summary would say it (text only)."""
        from datetime import timedelta

        from mailvoice.spoken.summary import build_script, collect
        from mailvoice.store.records import utcnow

        now = utcnow()
        names = [a.name for a in self.settings.accounts] + [m.name for m in self.settings.maildirs]
        scripts = [
            build_script(
                collect(self.store, name, now - timedelta(hours=24), self.settings),
                self.settings,
                account=name,
                since="24h",
                now=now,
            ).text
            for name in names
        ]
        return "\n\n".join(scripts) or "No mail account is configured ([[accounts]] or [[maildirs]])."

    async def _voice(self, msg: AudioMessage) -> None:
        seen = await asyncio.to_thread(self.store.seen_key, self.ledger_account, msg.room_id, msg.event_id)
        if seen:
            return
        audio = b""
        try:
            audio = await self._download(msg)
            transcript = await self.worker.run(self._transcribe, audio, msg.reference)
        except Quarantine as q:
            await self._quarantine(msg, audio, q.reason)
            return
        except (AudioError, EngineError) as exc:
            await self._quarantine(msg, audio, str(exc))
            return
        except Exception as exc:  # one event's surprise must not stop the room or the bot
            log.exception("matrix %s: event %s failed unexpectedly", self.account.name, msg.reference)
            await self._quarantine(msg, audio, f"unexpected {type(exc).__name__}")
            return
        threshold = self.settings.delivery.mark_uncertain_below
        from mailvoice.render import marked_text

        seconds = f"{int(transcript.duration) // 60}:{int(transcript.duration) % 60:02d}"
        head = f"Transcript ({seconds}, {transcript.language}): "
        content = threaded(
            msg,
            head + marked_text(transcript, threshold, as_html=False),
            html.escape(head) + marked_text(transcript, threshold, as_html=True),
        )
        await self._send(msg.room_id, msg.event_id, "transcript", content)
        crashpoint("matrix-replied")  # the tests' power cut between the reply and its ledger row
        await asyncio.to_thread(self._record, msg, audio, transcript)
        log.info("matrix %s: event %s transcribed (%.1f s)", self.account.name, msg.reference, transcript.duration)

    async def _download(self, msg: AudioMessage) -> bytes:
        limit = self.settings.audio.max_bytes
        if msg.encrypted_file or not msg.url.startswith("mxc://"):
            raise Quarantine("the audio file is end-to-end encrypted or has no mxc:// URL (not supported)")
        if msg.declared_size is not None and msg.declared_size > limit:
            raise Quarantine(f"declared size {msg.declared_size} bytes is over audio.max_bytes ({limit})")
        response = await self.client.download(mxc=msg.url)
        if isinstance(response, DownloadError):
            raise SourceError(f"download of event {msg.reference}'s audio failed ({response.message})")
        body = getattr(response, "body", b"")
        if not isinstance(body, bytes) or len(body) > limit:
            raise Quarantine(f"downloaded audio is over audio.max_bytes ({limit}) or not bytes")
        return body

    def _transcribe(self, audio: bytes, reference: str) -> Transcript:
        from mailvoice.audio import load_for_asr

        clip = load_for_asr(audio, name=f"matrix event {reference}", settings=self.settings.audio)
        return self.asr.transcribe(clip)

    async def _quarantine(self, msg: AudioMessage, audio: bytes, reason: str) -> None:
        log.warning("matrix %s: event %s quarantined: %s", self.account.name, msg.reference, reason)
        text = "This voice message could not be transcribed; it is kept in quarantine for the owner."
        await self._send(msg.room_id, msg.event_id, "quarantine", threaded(msg, text, html.escape(text)))
        raw = audio or json.dumps({"room": msg.room_id, "event": msg.event_id}).encode()
        await asyncio.to_thread(self.store.record_quarantined, self._ref(msg, audio), reason, raw)

    async def _send(self, room_id: str, event_id: str, what: str, content: dict[str, Any]) -> None:
        response = await self.client.room_send(
            room_id, "m.room.message", content, tx_id=txn_id(room_id, event_id, what)
        )
        if not isinstance(response, RoomSendResponse):
            if getattr(response, "status_code", "") == "M_FORBIDDEN":
                raise _Forbidden(f"the homeserver forbids sending the {what} to that room")
            raise SourceError(f"sending the {what} to a room failed ({getattr(response, 'message', response)})")

    def _ref(self, msg: AudioMessage, audio: bytes) -> Any:
        from mailvoice.store.records import SourceRef

        return SourceRef(
            account=self.ledger_account,
            folder=msg.room_id,
            message_id_hash=hashlib.sha256(msg.event_id.encode()).hexdigest(),
            content_hash=hashlib.sha256(audio).hexdigest(),
            key=msg.event_id,
        )

    def _record(self, msg: AudioMessage, audio: bytes, transcript: Transcript) -> None:
        from mailvoice.store.records import MessageContent, NewMessage

        message = NewMessage(
            kind="voicemail",
            account=self.ledger_account,
            content=MessageContent(
                text=transcript.text,
                transcript=transcript,
                sender=msg.sender,
                source=f"{self.ledger_account} {msg.room_id} {msg.event_id}",
                audio_type=msg.mimetype,
            ),
            duration=transcript.duration,
            language=transcript.language,
            audio=audio,
        )
        self.store.record_processed(self._ref(msg, audio), [message])


class _Forbidden(SourceError):
    """The homeserver refuses our message for good (M_FORBIDDEN): retrying the batch cannot help."""


_ENCRYPTED = (
    "This room turned on end-to-end encryption, which this bot does not support yet; it leaves rather than "
    "fail silently."
)
