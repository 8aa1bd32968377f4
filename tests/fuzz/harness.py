"""The two front doors of mailvoice as fuzz targets, and the seed corpora they start from (built at run time).

MIME front door: raw mail bytes through the pipeline's own stages, in its order (parse -> find_audio ->
transcribe -> compose, and the quarantine notice when a stage quarantines), with only the model replaced: the
"transcriber" hands back text made from the part's bytes, so hostile transcript text reaches the mail we
compose. The stages that only talk to the store (seen, seen_content, commit) are left out: they see hashes.

Audio front door: attachment bytes through what the transcriber runs before the model (sniff -> decode ->
preprocess, `load_for_asr`).

A finding is any exception that is not one of mailvoice's own error classes (mailvoice/errors.py), or an input that
takes more than SLOW_S of CPU time. Both targets raise `Finding` for it, so atheris stops and keeps the input.
"""

from __future__ import annotations

import os
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

SLOW_S = 1.0
"""CPU seconds one input may take before it counts as a finding (CPU, not wall: the machine is shared)."""

TESTS = Path(__file__).resolve().parent.parent
if str(TESTS) not in sys.path:
    sys.path.insert(0, str(TESTS))  # mailcorpus, audiogen


class Finding(Exception):
    """An exception escaped a front door that is not a mailvoice error, or one input was too slow."""


class Slowest:
    """The slowest inputs seen so far (CPU seconds, size), for the closing report."""

    def __init__(self, keep: int = 5) -> None:
        self.keep = keep
        self.items: list[tuple[float, int, bytes]] = []
        self.runs = 0

    def add(self, seconds: float, data: bytes) -> None:
        self.runs += 1
        if len(self.items) < self.keep or seconds > self.items[-1][0]:
            self.items.append((seconds, len(data), data[:4096]))
            self.items.sort(key=lambda t: -t[0])
            del self.items[self.keep :]


def guarded(
    target: Callable[[bytes], None], slowest: Slowest | None = None, *, limit: float | None = SLOW_S
) -> Callable[[bytes], None]:
    """Wrap a target: only MailvoiceError may escape; an input over `limit` CPU seconds is a finding."""
    from mailvoice.errors import MailvoiceError

    def run(data: bytes) -> None:
        start = time.thread_time()
        try:
            target(data)
        except MailvoiceError:
            pass
        except Exception as exc:
            raise Finding(f"{type(exc).__name__} escaped: {exc}") from exc
        spent = time.thread_time() - start
        if slowest is not None:
            slowest.add(spent, data)
        if limit is not None and spent > limit:
            raise Finding(f"one input of {len(data)} bytes took {spent:.2f} s of CPU (limit {limit} s)")

    return run


# -------------------------------------------------------------------------------------------- MIME front door


def mime_target() -> Callable[[bytes], None]:
    """A callable running one raw mail through the pipeline's parse, find_audio, transcribe and compose stages."""
    from mailvoice.compose import compose_quarantine_notice
    from mailvoice.config import Settings, SmtpSettings
    from mailvoice.errors import Quarantine
    from mailvoice.mail.source import SourceItem, SourceRef
    from mailvoice.pipeline import STAGES, Context, Pipeline, _Work
    from mailvoice.types import Segment, Transcript, Word

    settings = Settings(smtp=SmtpSettings(sender=""))
    ctx = Context(account="fuzz", address="owner@example.org", recipients=("owner@example.org",))

    def transcribe(data: bytes, name: str, budget: float | None = None) -> Transcript:
        # What a model could answer: any text at all, here the part's own bytes (CR, LF, NUL, 8-bit included).
        text = data[:160].decode("utf-8", "replace")
        words = tuple(Word(float(i), float(i) + 0.5, w, 0.3 + (i % 3) * 0.3) for i, w in enumerate(text.split()[:20]))
        segment = Segment(0.0, float(len(words)), text, -0.4, 0.1, words)
        return Transcript(text=text, language="en", duration=float(len(data) % 97), segments=(segment,))

    pipeline = Pipeline(settings, store=None, transcribe=transcribe)  # type: ignore[arg-type] # stages below skip it
    stages = [s for s in STAGES if s not in ("seen", "seen_content", "commit")]
    counter = iter(range(1, 1 << 62))

    def run(raw: bytes) -> None:
        ref = SourceRef(account="fuzz", folder="INBOX", uidvalidity=1, uid=next(counter))
        work = _Work(item=SourceItem(ref=ref, raw=raw, size=len(raw), internal_date=None), ctx=ctx)
        try:
            for stage in stages:
                getattr(pipeline, f"_stage_{stage}")(work)
        except Quarantine as q:
            compose_quarantine_notice(
                settings, work.parsed, ctx, q.reason, had_audio=bool(work.parts), source="fuzz/INBOX uid 1"
            )

    return run


def mime_seeds() -> Iterator[bytes]:
    """Voicemails of every phone system in the test corpus, hostile mails, and small bombs."""
    import mailcorpus as mc

    # The corpus builders attach a 4 KB tone; 40 ms keep every shape and make each execution cheaper.
    default, short = mc.b64lines(mc.tiny_wav()).encode(), mc.b64lines(mc.tiny_wav(0.04)).encode()
    for case in mc.CASES:
        yield case.build().replace(default, short)
    yield from (
        mc.traversal_filename_mail(),
        mc.broken_charset_mail(),
        mc.mislabelled_audio_mail(),
        mc.text_only_mail(),
        mc.html_hidden_mail(),
        mc.part_bomb(60),
        mc.depth_bomb(40),
        mc.message_depth_bomb(20),
        mc.header_bomb(2000),
    )


# -------------------------------------------------------------------------------------------- audio front door


def audio_target() -> Callable[[bytes], None]:
    """A callable running one attachment through sniff, decode and preprocess, as the transcriber does."""
    from mailvoice.audio import load_for_asr, sniff_format
    from mailvoice.config import AudioSettings

    settings = AudioSettings()

    def run(data: bytes) -> None:
        sniff_format(data)
        load_for_asr(data, name="fuzz.bin", settings=settings)

    return run


def audio_seeds() -> Iterator[bytes]:
    """Short recordings (0.3 s) in every container and codec the decoder accepts, plus a few odd shapes."""
    import audiogen as ag

    tone = ag.tone_bursts(16000, seconds=0.3)
    yield ag.wav_pcm16(tone, 16000)
    yield ag.wav_pcm16(ag.tone_bursts(8000, seconds=0.3), 8000)
    formats: list[tuple[int, dict[str, object]]] = [
        (8000, {"muxer": "wav", "codec": "pcm_mulaw"}),
        (8000, {"muxer": "wav", "codec": "pcm_alaw"}),
        (16000, {"muxer": "wav", "codec": "pcm_u8"}),
        (22050, {"muxer": "wav", "codec": "pcm_f32le"}),
        (8000, {"muxer": "wav", "codec": "adpcm_ima_wav"}),
        (8000, {"muxer": "mp3", "codec": "libmp3lame", "bit_rate": 16000}),
        (16000, {"muxer": "ogg", "codec": "libopus", "out_rate": 48000, "bit_rate": 24000}),
        (16000, {"muxer": "ogg", "codec": "flac"}),
        (16000, {"muxer": "ipod", "codec": "aac", "bit_rate": 32000}),
        (8000, {"muxer": "3gp", "codec": "libopencore_amrnb", "bit_rate": 12200}),
        (16000, {"muxer": "adts", "codec": "aac", "bit_rate": 32000}),
        (8000, {"muxer": "amr", "codec": "libopencore_amrnb", "bit_rate": 12200}),
        (16000, {"muxer": "flac", "codec": "flac"}),
        (48000, {"muxer": "webm", "codec": "libopus", "bit_rate": 32000}),
        (16000, {"muxer": "matroska", "codec": "libopus", "out_rate": 48000}),
    ]
    for rate, kw in formats:
        try:
            yield ag.encode_pyav(ag.tone_bursts(rate, seconds=0.3), rate, **kw)  # type: ignore[arg-type]
        except Exception:  # an encoder this FFmpeg build lacks: that seed is left out
            continue
    yield ag.silence_pyav("flac", "flac", 8000, 20.0, frame=4096)  # small file, long decode
    yield b"RIFF\x24\x00\x00\x00WAVEfmt "  # a header and nothing else


def write_seeds(kind: str, directory: Path) -> int:
    """Write the seed corpus of one target into directory; returns how many files."""
    seeds = mime_seeds() if kind == "mime" else audio_seeds()
    directory.mkdir(parents=True, exist_ok=True)
    count = 0
    for count, data in enumerate(seeds, 1):
        (directory / f"seed-{count:03d}").write_bytes(data)
    return count


TARGETS: dict[str, Callable[[], Callable[[bytes], None]]] = {"mime": mime_target, "audio": audio_target}


def quiet() -> None:
    """Module loggers stay silent while fuzzing (the CLI configures logging; here nothing does)."""
    import logging

    logging.disable(logging.CRITICAL)
    os.environ.pop("MAILVOICE_TEST_CRASH_AT", None)
