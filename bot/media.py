"""Residents' photos and voice notes: fetched once through WeChat's media API into app.media_dir."""
from __future__ import annotations

import logging
import os
from pathlib import Path

from wechatpy.exceptions import WeChatClientException

logger = logging.getLogger(__name__)

EXPIRED_MEDIA = {40007}  # invalid or expired media_id (WeChat keeps media 3 days): never retry


def download(client, settings: dict, payload: dict) -> Path:
    """Fetches cgi-bin/media/get into media_dir/<file> unless the file is already there."""
    from .outbox import Permanent
    root = Path(settings["app"]["media_dir"]).resolve()
    target = (root / payload["file"]).resolve()
    if root not in target.parents:
        raise Permanent(f"media file name {payload['file']!r} leaves the media directory")
    if target.exists():
        return target
    try:
        res = client.get("media/get", params={"media_id": payload["media_id"]})
    except WeChatClientException as exc:
        if exc.errcode in EXPIRED_MEDIA:
            raise Permanent(f"media {payload['media_id']} expired: {exc.errmsg}") from None
        raise
    if isinstance(res, dict) or not getattr(res, "content", None):
        raise Permanent(f"media/get answered without a file: {str(res)[:100]}")
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = target.with_name(target.name + ".part")
    tmp.write_bytes(res.content)
    os.replace(tmp, target)  # atomic: a reader never sees half a file
    logger.info("stored media %s (%d bytes)", target.name, len(res.content))
    return target
