"""The Flask adapter: app factory wiring config, database, webhook, sandbox and CLI."""
from __future__ import annotations

import logging
from pathlib import Path

from flask import Flask
from wechatpy.crypto import WeChatCrypto

from handlers import menus as menu_loader
from handlers.context import Services
from models import labels as label_loader
from models import segmenter

from . import cli, console, db, mydata, open311, sandbox, scheduler, triage, voice, webhook
from . import mobile, ops
from .config import REAL_API_BASE_URL, REAL_OAUTH_BASE_URL, load_settings

ROOT = Path(__file__).resolve().parent.parent


def create_app(test_config: dict | None = None) -> Flask:
    """Builds the app: settings (defaults < TOML < env < test_config), then each part."""
    app = Flask(__name__, template_folder=str(ROOT / "templates"), static_folder=str(ROOT / "static"),
                instance_path=str(ROOT / "instance"))
    settings = load_settings(overrides=test_config)
    wx = settings["wechat"]
    if wx["sandbox"] and wx["api_base_url"] == REAL_API_BASE_URL:
        # Sandbox mode never talks to WeChat: the built-in stand-in answers instead.
        wx["api_base_url"] = settings["app"]["public_url"].rstrip("/") + "/sandbox/api/"
    if wx["sandbox"] and wx["oauth_base_url"] == REAL_OAUTH_BASE_URL:
        # ...and a stand-in of WeChat's authorisation page tells who is reading.
        wx["oauth_base_url"] = settings["app"]["public_url"].rstrip("/") + "/sandbox/connect/"
    app.config.update(REDSTEWARD=settings, SECRET_KEY=settings["app"]["secret_key"],
                      MAX_CONTENT_LENGTH=settings["app"]["max_body_bytes"],
                      SESSION_COOKIE_HTTPONLY=True, SESSION_COOKIE_SAMESITE="Lax",
                      SESSION_COOKIE_SECURE=not wx["sandbox"])
    Path(app.instance_path).mkdir(exist_ok=True)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s %(message)s")
    db.init_app(app)
    # Checked before anything shows a label: a missing one stops start-up with its file and line.
    label_loader.use(label_loader.load(settings["app"]["labels_path"] or label_loader.DEFAULT_PATH))
    label_loader.add_to(app.jinja_env)
    menus_path = settings["app"]["menus_path"] or menu_loader.DEFAULT_PATH
    app.extensions["redsteward.services"] = Services(settings=settings, menus=menu_loader.load(menus_path))
    # Loaded here, not on a resident's message; under gunicorn --preload the workers share it.
    segmenter.configure(Path(app.instance_path) / "segmenter")
    segmenter.tokenizer()
    if wx["encoding_aes_key"]:
        app.extensions["redsteward.crypto"] = WeChatCrypto(wx["token"], wx["encoding_aes_key"], wx["appid"])
    app.register_blueprint(webhook.bp)
    if wx["sandbox"]:
        app.register_blueprint(sandbox.bp)
    cli.init_app(app)
    app.register_blueprint(mobile.bp)
    scheduler.init_app(app)
    voice.init_app(app)
    app.register_blueprint(mydata.bp)
    open311.init_app(app)
    triage.init_app(app)
    console.init_app(app)
    ops.init_app(app)
    return app
