"""`flask --app wsgi qr posters OUTDIR`: a poster PNG per estate with its permanent QR code."""
from __future__ import annotations

import logging
import re
import subprocess
from pathlib import Path
from typing import TYPE_CHECKING

import click
import yaml
from flask import current_app
from flask.cli import AppGroup
from sqlalchemy import select

from handlers.welcome import ESTATE_SCENE_PREFIX
from models import Estate

if TYPE_CHECKING:  # qrcode and Pillow are imported by the poster commands, not by the web app
    from PIL import Image

logger = logging.getLogger(__name__)
qr_cli = AppGroup("qr", help="Parametric QR codes that bind a follower to an estate.")

POSTER_SIZE = (900, 1200)
WORDING = Path(__file__).resolve().parent.parent / "templates" / "posters" / "estate.yaml"


def wording() -> dict:
    """The poster's fixed lines, kept with the other wording under templates/."""
    return yaml.safe_load(WORDING.read_text(encoding="utf-8"))


def cjk_font_path() -> str | None:
    """A font that has Chinese glyphs, found with fc-list (fonts-noto-cjk on Debian)."""
    try:
        out = subprocess.run(["fc-list", ":lang=zh", "file"], capture_output=True, text=True,
                             timeout=10, check=False).stdout
    except (OSError, subprocess.SubprocessError):
        return None
    paths = sorted(line.split(":")[0].strip() for line in out.splitlines() if line.strip())
    # Prefer a sans-serif regular face; any CJK font beats boxes.
    for pattern in ("SansCJK-Regular", "Sans", "Regular"):
        for path in paths:
            if pattern in path:
                return path
    return paths[0] if paths else None


def create_ticket(client, scene: str) -> dict:
    """Asks WeChat for a permanent string-scene QR code; returns its ticket and URL."""
    return client.post("qrcode/create", data={
        "action_name": "QR_LIMIT_STR_SCENE", "action_info": {"scene": {"scene_str": scene}}})


def draw_poster(url: str, lines: list[str], font_path: str | None) -> Image.Image:
    """A printable poster: header, title and subtitle above the QR code, two lines below it."""
    import qrcode
    from PIL import Image, ImageDraw, ImageFont
    poster = Image.new("RGB", POSTER_SIZE, "white")
    pen = ImageDraw.Draw(poster)
    pen.rectangle([0, 0, POSTER_SIZE[0], 150], fill=(192, 0, 0))
    layout = [(40, 64, "white"), (200, 52, (40, 40, 40)), (280, 36, (90, 90, 90)),
              (1020, 40, (192, 0, 0)), (1090, 30, (90, 90, 90))]
    for (y, size, colour), text in zip(layout, lines):
        face = ImageFont.truetype(font_path, size) if font_path else ImageFont.load_default(size)
        pen.text(((POSTER_SIZE[0] - pen.textlength(text, font=face)) / 2, y), text, font=face, fill=colour)
    code = qrcode.QRCode(border=2, box_size=12, error_correction=qrcode.constants.ERROR_CORRECT_M)
    code.add_data(url)
    code.make(fit=True)
    poster.paste(code.make_image().convert("RGB").resize((620, 620)), ((POSTER_SIZE[0] - 620) // 2, 370))
    return poster


def make_posters(session, client, outdir: Path, font_path: str | None) -> list[Path]:
    """One PNG per estate, named by the estate's code."""
    outdir.mkdir(parents=True, exist_ok=True)
    estates = [(e.code, e.name, e.community.name)
               for e in session.scalars(select(Estate).order_by(Estate.code))]
    session.rollback()  # hold no database lock while WeChat is being called
    written = []
    for code, name, community in estates:
        scene = f"{ESTATE_SCENE_PREFIX}{code}"
        ticket = create_ticket(client, scene)
        title = name if font_path else code
        subtitle = community if font_path else scene
        path = outdir / f"{re.sub(r'[^A-Za-z0-9_-]', '_', code)}.png"
        words = wording() if font_path else {"header": "Red Steward", "invite": "Scan with WeChat",
                                              "slogan": ""}
        lines = [words["header"], title, subtitle, words["invite"], words["slogan"]]
        draw_poster(ticket["url"], lines, font_path).save(path, "PNG")
        written.append(path)
    return written


@qr_cli.command("posters")
@click.argument("outdir", type=click.Path(file_okay=False))
def posters(outdir):
    """Write a QR poster PNG per estate (scene estate_<code>) into OUTDIR."""
    from .db import get_session
    from .wechat_api import build_client
    settings = current_app.config["REDSTEWARD"]
    sessions = current_app.extensions["redsteward.sessions"]
    font_path = cjk_font_path()
    if font_path is None:
        click.echo("warning: no CJK font found (apt-get install fonts-noto-cjk); "
                   "posters show estate codes instead of names", err=True)
    written = make_posters(get_session(), build_client(settings, sessions), Path(outdir), font_path)
    click.echo(f"{len(written)} posters written to {outdir}")
