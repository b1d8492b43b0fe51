"""Settings: defaults, the TOML file, environment variables, and refusals that name the key."""
from __future__ import annotations

import pytest

from bot.config import ConfigError, load_settings


def write(tmp_path, text: str):
    path = tmp_path / "config.toml"
    path.write_text(text, encoding="utf-8")
    return path


def test_defaults_are_sandbox(tmp_path):
    s = load_settings(environ={})
    assert s["wechat"]["sandbox"] is True
    assert s["wechat"]["appid"] and s["wechat"]["token"] == "sandboxtoken"


@pytest.mark.parametrize("missing", ["appsecret", "token"])
def test_production_without_a_secret_refuses_and_names_the_key(tmp_path, missing):
    values = {"appid": "wx123", "appsecret": "s", "token": "t"}
    values[missing] = ""
    body = "[app]\nsecret_key='k'\npii_key='p'\n[wechat]\n" + "".join(f"{k}='{v}'\n" for k, v in values.items())
    with pytest.raises(ConfigError, match=f"wechat.{missing}"):
        load_settings(write(tmp_path, body), environ={})


def test_production_needs_a_personal_data_key(tmp_path):
    path = write(tmp_path, "[app]\nsecret_key='k'\n[wechat]\nappid='wx1'\nappsecret='s'\ntoken='t'\n")
    with pytest.raises(ConfigError, match="app.pii_key"):
        load_settings(path, environ={})


def test_environment_beats_the_file_and_is_typed(tmp_path):
    path = write(tmp_path, "[app]\nflow_idle_minutes = 10\n[database]\nurl='sqlite:///a.db'\n")
    s = load_settings(path, environ={"REDSTEWARD_APP_FLOW_IDLE_MINUTES": "45",
                                     "REDSTEWARD_DATABASE_URL": "sqlite:///b.db"})
    assert s["app"]["flow_idle_minutes"] == 45
    assert s["database"]["url"] == "sqlite:///b.db"


def test_config_path_from_environment(tmp_path):
    path = write(tmp_path, "[scheduler]\ndigest_time='15:30'\n")
    s = load_settings(environ={"REDSTEWARD_CONFIG": str(path)})
    assert s["scheduler"]["digest_time"] == "15:30"


@pytest.mark.parametrize("body,needle", [
    ("[wechat]\nappsceret='x'\n", "wechat.appsceret"),
    ("[wechaat]\nappid='x'\n", "[wechaat]"),
    ("[wechat]\nencrypt_mode='secure'\n", "encrypt_mode"),
    ("[wechat]\nencoding_aes_key='short'\n", "encoding_aes_key"),
])
def test_typos_are_named(tmp_path, body, needle):
    with pytest.raises(ConfigError) as exc:
        load_settings(write(tmp_path, body), environ={})
    assert needle in str(exc.value)


def test_example_config_documents_every_key():
    from pathlib import Path

    import tomllib

    from bot.config import DEFAULTS
    text = (Path(__file__).resolve().parent.parent / "config.example.toml").read_text(encoding="utf-8")
    data = tomllib.loads(text)
    for section, values in DEFAULTS.items():
        for key in values:
            assert key in data.get(section, {}) or f"# {key} =" in text, f"{section}.{key} undocumented"
            env = f"REDSTEWARD_{section}_{key}".upper()
            assert env in text or f"REDSTEWARD_{section.upper()}_<" in text, f"{env} not mentioned"
