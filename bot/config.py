"""Settings: built-in sandbox defaults, then the TOML file, then environment variables."""
from __future__ import annotations

import copy
import os
import tomllib

REAL_API_BASE_URL = "https://api.weixin.qq.com/"
REAL_OAUTH_BASE_URL = "https://open.weixin.qq.com/connect/"

# Every key here is documented in config.example.toml; keep the two in step.
DEFAULTS: dict[str, dict] = {
    "app": {
        "secret_key": "sandbox-not-secret",
        "public_url": "http://127.0.0.1:5000",
        "max_body_bytes": 1_048_576,
        "timestamp_window_seconds": 0,
        "pii_key": "",
        "pii_previous_keys": [],
        "rate_limit_per_minute": 30,
        "flow_idle_minutes": 30,
        "dedup_keep_seconds": 600,
        "media_dir": "instance/media",
        "menus_path": "",
        "labels_path": "",
    },
    "database": {"url": "sqlite:///instance/redsteward.sqlite3", "echo": False},
    "wechat": {
        "appid": "",
        "appsecret": "",
        "token": "sandboxtoken",
        "encoding_aes_key": "",
        "encrypt_mode": "plain",
        "api_base_url": REAL_API_BASE_URL,
        "oauth_base_url": REAL_OAUTH_BASE_URL,
        "sandbox": None,
        "use_stable_token": True,
        "timeout_seconds": 4.0,
    },
    "templates": {
        "new_request": "TPL_NEW_REQUEST",
        "request_update": "TPL_REQUEST_UPDATE",
        "reminder": "TPL_REMINDER",
        "digest": "TPL_DIGEST",
        "announcement": "TPL_ANNOUNCEMENT",
        "activity": "TPL_ACTIVITY",
        "volunteer": "TPL_VOLUNTEER",
        "club": "TPL_CLUB",
    },
    "mail": {
        "host": "127.0.0.1",
        "port": 25,
        "username": "",
        "password": "",
        "starttls": False,
        "sender": "redsteward@park.local",
        "timeout_seconds": 10.0,
    },
    "redis": {"url": ""},
    "points": {
        "per_hour": 1,
        "expiry_years": 1,
        "max_hours_per_activity": 8,
        "checkin_early_minutes": 60,
        "checkout_late_minutes": 120,
    },
    "scheduler": {
        "timezone": "Asia/Shanghai",
        "digest_weekday": "fri",
        "digest_time": "16:00",
        "lock_file": "instance/scheduler.lock",
        "outbox_interval_seconds": 5,
        "outbox_rate_per_second": 50,
        "outbox_max_attempts": 8,
        "outbox_threads": 8,
        "takeover_seconds": 5,
        "scan_interval_seconds": 300,
        "reminder_hours": [24, 0],
        "escalation_grace_hours": 24,
        "daily_summary_time": "08:30",
        "follow_up_time": "10:00",
        "follow_up_days": 3,
        "follow_up_retry_days": 3,
        "conversation_keep_hours": 24,
    },
    "deadlines": {
        "help_days": 3,
        "inquiry_days": 1,
        "suggestion_days": 7,
        "complex_days": 15,
        "holidays": [],
        "workdays": [],
    },
    "privacy": {
        "notice_version": "2026-11",
        "export_link_minutes": 15,
        "deletion_confirm_minutes": 15,
        "request_retention_days": 1095,
        "media_retention_days": 180,
        "retention_time": "03:30",
    },
    "media": {
        "ffmpeg": "ffmpeg",
        "ffprobe": "ffprobe",
        "link_minutes": 120,
        "max_attempts": 5,
    },
    "ops": {
        "metrics_token": "",
        "proxy_count": 0,
        "outbox_backlog_max": 1000,
        "scheduler_stale_seconds": 120,
        "require_scheduler": True,
    },
}

ENV_PREFIX = "REDSTEWARD_"
SANDBOX_APPID = "wxsandbox0000000"
SANDBOX_SECRET = "sandbox-secret"


class ConfigError(RuntimeError):
    """A setting is missing or wrong; the message names the key."""


def _coerce(value: str, like):
    """Turns an environment string into the type of the default it replaces."""
    if isinstance(like, bool) or like is None:
        return value.strip().lower() in ("1", "true", "yes", "on")
    if isinstance(like, list):
        return [item.strip() for item in value.split(",") if item.strip()]
    if isinstance(like, int):
        return int(value)
    if isinstance(like, float):
        return float(value)
    return value


def load_settings(path: str | os.PathLike | None = None, overrides: dict | None = None,
                  environ: dict | None = None) -> dict:
    """Builds the settings mapping: defaults < TOML file < environment < overrides."""
    settings = copy.deepcopy(DEFAULTS)
    environ = os.environ if environ is None else environ
    path = path or environ.get("REDSTEWARD_CONFIG")
    if path:
        with open(path, "rb") as fh:
            data = tomllib.load(fh)
        for section, values in data.items():
            if section not in settings or not isinstance(values, dict):
                raise ConfigError(f"{path}: unknown section [{section}]")
            for key, value in values.items():
                if key not in settings[section]:
                    raise ConfigError(f"{path}: unknown key {section}.{key}")
                settings[section][key] = value
    for section, values in settings.items():
        for key, default in values.items():
            name = f"{ENV_PREFIX}{section}_{key}".upper()
            if name in environ:
                values[key] = _coerce(environ[name], default)
    for section, values in (overrides or {}).items():
        settings.setdefault(section, {}).update(values)
    return _finish(settings)


def _finish(settings: dict) -> dict:
    """Derives sandbox mode and refuses an incomplete production configuration."""
    wx = settings["wechat"]
    if wx["sandbox"] is None:
        wx["sandbox"] = not wx["appid"]
    if wx["sandbox"]:
        wx["appid"] = wx["appid"] or SANDBOX_APPID
        wx["appsecret"] = wx["appsecret"] or SANDBOX_SECRET
    else:
        for key in ("appid", "appsecret", "token"):
            if not wx[key]:
                raise ConfigError(
                    f"wechat.{key} is required outside sandbox mode "
                    f"(set it in the config file or {ENV_PREFIX}WECHAT_{key.upper()})")
        if settings["app"]["secret_key"] == DEFAULTS["app"]["secret_key"]:
            raise ConfigError("app.secret_key must be set outside sandbox mode "
                              f"({ENV_PREFIX}APP_SECRET_KEY)")
        if not settings["app"]["pii_key"]:
            raise ConfigError("app.pii_key is required outside sandbox mode "
                              f"({ENV_PREFIX}APP_PII_KEY)")
    if wx["encrypt_mode"] not in ("plain", "compatible", "safe"):
        raise ConfigError("wechat.encrypt_mode must be plain, compatible or safe")
    if wx["encrypt_mode"] != "plain" or wx["encoding_aes_key"]:
        key = wx["encoding_aes_key"]
        if len(key) != 43 or not key.isalnum():
            raise ConfigError("wechat.encoding_aes_key must be 43 letters and digits")
    for key in ("api_base_url", "oauth_base_url"):
        if not wx[key].endswith("/"):
            wx[key] += "/"
    previous = settings["app"]["pii_previous_keys"]
    if not isinstance(previous, list) or not all(isinstance(k, str) and k for k in previous):
        raise ConfigError("app.pii_previous_keys must be a list of non-empty strings "
                          f"({ENV_PREFIX}APP_PII_PREVIOUS_KEYS: comma-separated)")
    if not settings["app"]["pii_key"]:
        # Sandbox only: a fixed key derived from the secret key keeps demo data readable.
        settings["app"]["pii_key"] = "sandbox:" + settings["app"]["secret_key"]
    return settings
