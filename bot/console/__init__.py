"""The web console: stewards' workbench, directory, content, dashboard and assessment."""
from __future__ import annotations

from flask import Flask

from . import accounts, assessment, auth, content, dashboard, directory, requests, users, wechat


def init_app(app: Flask) -> None:
    """Registers the console's blueprints, its CSRF check and the `user` commands."""
    auth.init_app(app)
    for module in (auth, requests, directory, content, dashboard, assessment, accounts, wechat):
        app.register_blueprint(module.bp)
    app.cli.add_command(users.user_cli)
