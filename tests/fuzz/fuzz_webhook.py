"""Fuzz target for the webhook parser: any bytes, signed as WeChat signs them, in plain and safe mode.

A 5xx answer, an exception escaping Flask or an answer slower than a second is a crash.

    # coverage-guided, with atheris (pip install atheris==3.0.0); extra arguments go to libFuzzer
    .venv/bin/python tests/fuzz/fuzz_webhook.py -max_total_time=300 instance/fuzz-corpus
    # without atheris: hypothesis' fuzz entry point fed with mutated WeChat messages
    .venv/bin/python tests/fuzz/fuzz_webhook.py --hypothesis --seconds 300
"""
from __future__ import annotations

import atexit
import logging
import random
import secrets
import shutil
import sys
import tempfile
import time
from hashlib import sha1

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

AES_KEY = "abcdefghijklmnopqrstuvwxyz0123456789ABCDEFG"
TOKEN = "fuzztoken"
SEEDS = [
    b"<xml><ToUserName><![CDATA[gh_fuzz]]></ToUserName><FromUserName><![CDATA[o_fuzz]]></FromUserName>"
    b"<CreateTime>1700000000</CreateTime><MsgType><![CDATA[text]]></MsgType>"
    b"<Content><![CDATA[\xe5\xb8\xae\xe5\x8a\xa9]]></Content><MsgId>1</MsgId></xml>",
    b"<xml><ToUserName>gh_fuzz</ToUserName><FromUserName>o_fuzz</FromUserName><CreateTime>1</CreateTime>"
    b"<MsgType>event</MsgType><Event>CLICK</Event><EventKey>FLOW_HELP</EventKey></xml>",
    b"<xml><ToUserName>gh_fuzz</ToUserName><FromUserName>o_fuzz</FromUserName><CreateTime>2</CreateTime>"
    b"<MsgType>location</MsgType><Location_X>31.3</Location_X><Location_Y>120.7</Location_Y>"
    b"<Scale>15</Scale><Label>x</Label><MsgId>2</MsgId></xml>",
]
_apps: dict = {}


def _sign(*parts: str) -> str:
    """WeChat's signature, computed here so the target depends on nothing but the app."""
    return sha1("".join(sorted(parts)).encode()).hexdigest()


def _app(mode: str):
    """The app in `mode` on its own SQLite file, built on first use (rate limit off)."""
    if mode not in _apps:
        from bot import create_app
        from models import Base
        from wechatpy.crypto import WeChatCrypto
        folder = tempfile.mkdtemp(prefix="rs-fuzz-")
        atexit.register(shutil.rmtree, folder, ignore_errors=True)
        wechat = {"token": TOKEN, "encrypt_mode": mode, "encoding_aes_key": AES_KEY if mode == "safe" else ""}
        app = create_app({"database": {"url": f"sqlite:///{folder}/fuzz.sqlite3"}, "wechat": wechat,
                          "app": {"media_dir": f"{folder}/media", "rate_limit_per_minute": 0}})
        Base.metadata.create_all(app.extensions["redsteward.engine"])
        crypto = WeChatCrypto(TOKEN, AES_KEY, app.config["REDSTEWARD"]["wechat"]["appid"])
        _apps[mode] = (app.test_client(), crypto)
    return _apps[mode]


def fuzz_one(data: bytes) -> None:
    """One input: the first byte picks the mode, the rest is the body, signed (and encrypted)."""
    mode = "safe" if data[:1] and data[0] & 1 else "plain"
    client, crypto = _app(mode)
    body = data[1:]
    ts, nonce = str(int(time.time())), secrets.token_hex(4)
    query = {"timestamp": ts, "nonce": nonce, "signature": _sign(TOKEN, ts, nonce)}
    if mode == "safe":
        from wechatpy.crypto import PrpCrypto
        encrypt = PrpCrypto(crypto.key).encrypt(body, crypto._id).decode()
        body = f"<xml><ToUserName>gh_fuzz</ToUserName><Encrypt>{encrypt}</Encrypt></xml>".encode()
        query.update(encrypt_type="aes", msg_signature=_sign(TOKEN, ts, nonce, encrypt))
    started = time.monotonic()
    resp = client.post("/wechat", query_string=query, data=body)
    elapsed = time.monotonic() - started
    if resp.status_code >= 500 or elapsed > 1.0:
        raise AssertionError(f"{mode}: {resp.status_code} after {elapsed:.2f}s for {data[:300]!r}")


@settings(database=None, deadline=None, suppress_health_check=list(HealthCheck))
@given(st.binary(max_size=8192))
def _property(data: bytes) -> None:
    """fuzz_one as a hypothesis test, so its fuzz_one_input entry point can drive it."""
    fuzz_one(data)


def _mutate(rng: random.Random, data: bytes) -> bytes:
    """A seed with a few bytes flipped, inserted, deleted or spliced from another seed."""
    out = bytearray(data)
    for _ in range(rng.randint(1, 8)):
        op, at = rng.randrange(4), rng.randrange(len(out) + 1)
        if op == 0 and out:
            out[min(at, len(out) - 1)] ^= 1 << rng.randrange(8)
        elif op == 1:
            out[at:at] = rng.choice([b"]]>", b"<![CDATA[", b"&", b"<", b"\x00", b"\xff", b"</xml>",
                                     b"<FromUserName>o</FromUserName>", "😀".encode(), b"9" * 30])
        elif op == 2:
            del out[at:at + rng.randint(1, 16)]
        else:
            other = rng.choice(SEEDS)
            out[at:] = other[rng.randrange(len(other)):]
    return bytes(out)


def run_hypothesis(seconds: float, seed: int = 0) -> int:
    """Feeds hypothesis' fuzz_one_input mutated seeds for `seconds`; returns how many inputs ran."""
    _app("plain"), _app("safe")  # built before the clock starts: loading takes seconds
    rng, count, end = random.Random(seed), 0, time.monotonic() + seconds
    while time.monotonic() < end:
        data = bytes([count & 1]) + _mutate(rng, rng.choice(SEEDS))
        _property.hypothesis.fuzz_one_input(data)
        count += 1
    return count


def main(argv: list[str]) -> None:
    """Runs atheris when installed (or hypothesis with --hypothesis); logs only errors."""
    logging.disable(logging.WARNING)
    if "--hypothesis" in argv:
        seconds = float(argv[argv.index("--seconds") + 1]) if "--seconds" in argv else 60.0
        print(f"fuzz_webhook: {run_hypothesis(seconds)} inputs in {seconds:g} s, no crash")
        return
    import atheris  # installed apart from the test dependencies: pip install atheris==3.0.0
    # Coverage feedback from the parsing code only: instrumenting the whole app takes minutes.
    with atheris.instrument_imports(include=["bot.webhook", "wechatpy", "xmltodict"]):
        import bot.webhook  # noqa: F401
        import wechatpy  # noqa: F401
        import xmltodict  # noqa: F401
    atheris.Setup(argv, fuzz_one)
    atheris.Fuzz()


if __name__ == "__main__":
    main(sys.argv)
