"""语音求助: voice notes filed as requests, fetched once, converted for browsers, summarised by stewards."""
from __future__ import annotations

import logging
import subprocess
from datetime import datetime, timedelta
from pathlib import Path
from typing import Callable

from sqlalchemy import select
from sqlalchemy.orm import sessionmaker

from models import MediaFile, ServiceRequest
from models.media import add_summary, queue_download

from . import flows, registry
from .context import Context
from .registry import action, completer
from .replies import Reply, Text
from .texts import say

logger = logging.getLogger(__name__)

VOICE_FLOW = "voice_help"
PLAYABLE_SUFFIX = ".mp3"
# ffmpeg decodes AMR-NB/WB and Speex; MP3 plays in every browser, WeChat's own included.
FFMPEG_ARGS = ("-vn", "-ac", "1", "-ar", "16000", "-c:a", "libmp3lame", "-b:a", "32k")
CONVERT_TIMEOUT = 60


class MediaGone(Exception):
    """WeChat no longer has the media (its ids live three days): retrying cannot help."""


# --- filing -------------------------------------------------------------------------------

def voice_answers(answers: dict) -> list[dict]:
    """The voice answers among a flow's answers ({voice_media_id, recognition})."""
    return [v for v in answers.values() if isinstance(v, dict) and v.get("voice_media_id")]


def attach(ctx: Context, req: ServiceRequest, answers: dict) -> Reply | None:
    """Queues the download of a request's voice notes; returns the short reply voice senders get."""
    voices = voice_answers(answers)
    for voice in voices:
        queue_download(ctx.session, voice["voice_media_id"], "voice", request_id=req.id,
                       source_format=voice.get("format") or None, recognition=voice.get("recognition"),
                       now=ctx.now)
    if not voices:
        return None
    return Text(say("voice_filed", ref=req.ref))


@action("message.voice")
def voice_outside_flow(ctx: Context) -> Reply:
    """A voice note out of the blue: offer to file it as a 求助 with one reply."""
    if not ctx.resident.is_verified:
        return Text(say("voice_verify_first"))
    flow = ctx.services.menus.flows.get(VOICE_FLOW)
    if flow is None:  # the offer was taken out of menus.yaml
        return Text(say("unsupported", kind="voice"))
    conv = ctx.conversation
    conv.clear()
    conv.flow = flow.name
    conv.step = flows.CONFIRM
    first = flow.steps[0].id
    conv.data = {first: {"voice_media_id": ctx.message.media_id,
                         "recognition": getattr(ctx.message, "recognition", None) or "",
                         "format": getattr(ctx.message, "format", None) or ""}}
    conv.history = [first]
    return Text(say("voice_offer"))


@completer("voice.file")
def file_voice(ctx: Context, answers: dict) -> Reply:
    """Files the offered voice note as a 求助 through the ordinary filing."""
    return registry.COMPLETERS["requests.file"](ctx, {"kind": "help", "category": None, **answers})


# --- the steward's summary ----------------------------------------------------------------

def summarise(req: ServiceRequest, text: str) -> str:
    """Stores a steward's written summary as the request's text; returns the confirmation."""
    add_summary(req, text)
    return say("voice_summary_saved", ref=req.ref)


# --- downloading and converting, outside the webhook -----------------------------------------

def convert(source: Path, target: Path, ffmpeg: str = "ffmpeg") -> None:
    """Transcodes a voice note (AMR, Speex, …) to MP3 with ffmpeg; raises on failure."""
    tmp = target.with_name(target.name + ".part")
    cmd = [ffmpeg, "-nostdin", "-v", "error", "-y", "-i", str(source), *FFMPEG_ARGS, "-f", "mp3", str(tmp)]
    done = subprocess.run(cmd, capture_output=True, timeout=CONVERT_TIMEOUT, check=False)
    if done.returncode != 0 or not tmp.exists() or tmp.stat().st_size == 0:
        tmp.unlink(missing_ok=True)
        raise RuntimeError(f"ffmpeg failed: {done.stderr.decode(errors='replace')[-300:]}")
    tmp.replace(target)


def duration_of(path: Path, ffprobe: str = "ffprobe") -> float:
    """The exact length in seconds, from the decoded packets (AMR headers carry no duration)."""
    cmd = [ffprobe, "-v", "error", "-select_streams", "a:0", "-show_entries",
           "packet=pts_time,duration_time", "-of", "csv=p=0", str(path)]
    done = subprocess.run(cmd, capture_output=True, timeout=CONVERT_TIMEOUT, check=True, text=True)
    end = 0.0
    for line in done.stdout.splitlines():
        pts, _, dur = line.partition(",")
        try:
            end = max(end, float(pts) + float(dur or 0))
        except ValueError:
            continue
    return round(end, 2)


def download_due(sessions: sessionmaker, settings: dict, now: datetime,
                 fetch: Callable[[str, str], Path], limit: int = 50) -> dict:
    """Fetches queued media once, converts voice notes, records length and paths; returns counts."""
    counts = {"downloaded": 0, "retry": 0, "failed": 0, "skipped": 0}
    with sessions() as s:
        due = list(s.scalars(select(MediaFile.id).where(MediaFile.status == "pending",
                                                        MediaFile.next_attempt_at <= now)
                             .order_by(MediaFile.id).limit(limit)))
    for media_id in due:
        counts[_download_one(sessions, settings, now, fetch, media_id)] += 1
    return counts


def _download_one(sessions: sessionmaker, settings: dict, now: datetime, fetch, row_id: int) -> str:
    """One media file: fetch, convert, record; failures back off and give up after max_attempts."""
    media = settings["media"]
    with sessions() as s, s.begin():
        row = s.scalar(select(MediaFile).where(MediaFile.id == row_id, MediaFile.status == "pending")
                       .with_for_update(skip_locked=True))
        if row is None:
            return "skipped"  # another worker has it
        row.attempts += 1
        # Leased: a crash mid-way leaves the row to be tried again later, not lost.
        row.next_attempt_at = now + timedelta(minutes=5)
        media_id, kind, attempts = row.media_id, row.kind, row.attempts
    suffix = ".amr" if kind == "voice" else ".jpg"
    relative = f"{kind}/{row_id}{suffix}"
    error, outcome = None, "downloaded"
    source = playable = None
    length = None
    try:
        source = fetch(media_id, relative)
        if kind == "voice":
            playable = source.with_suffix(PLAYABLE_SUFFIX)
            convert(source, playable, media["ffmpeg"])
            length = duration_of(source, media["ffprobe"])
    except MediaGone as exc:
        outcome, error = "failed", str(exc)
    except Exception as exc:  # network, WeChat or ffmpeg: try again later
        logger.warning("media %s: attempt %s failed: %s", row_id, attempts, exc)
        outcome, error = ("failed" if attempts >= media["max_attempts"] else "retry"), str(exc)[:500]
    with sessions() as s, s.begin():
        row = s.get(MediaFile, row_id)
        if outcome == "downloaded":
            row.status, row.path, row.downloaded_at = "downloaded", str(source), now
            row.playable_path = str(playable) if playable else str(source)
            row.duration, row.size, row.last_error = length, source.stat().st_size, None
        elif outcome == "failed":
            row.status, row.last_error = "failed", error
        else:
            row.last_error = error
            row.next_attempt_at = now + timedelta(seconds=min(3600, 30 * 2 ** attempts))
    return outcome
