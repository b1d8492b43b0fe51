"""Writes the signed WeChat deliveries the load generator replays: one line per request.

Residents take turns in blocks: a block of residents clicks 实名认证, then the same
block answers the name step, so a conversation step always follows its click even with
many connections in flight. MsgId and CreateTime are unique per run, so retry
de-duplication never answers from its cache. Each line is `query<TAB>body`, the
signature precomputed (plain mode reuses one timestamp/nonce; safe mode signs each
encrypted body with its own msg_signature).
"""
from __future__ import annotations

import argparse
import hashlib
import sys
from pathlib import Path
from urllib.parse import urlencode

from wechatpy.crypto import WeChatCrypto

TOKEN = "anchortoken"
AES_KEY = "abcdefghijklmnopqrstuvwxyz0123456789ABCDEFG"
APPID = "wxsandbox0000000"
BLOCK = 64
CLICK = ("<xml><ToUserName><![CDATA[gh_bench]]></ToUserName><FromUserName><![CDATA[{openid}]]>"
         "</FromUserName><CreateTime>{time}</CreateTime><MsgType><![CDATA[event]]></MsgType>"
         "<Event><![CDATA[CLICK]]></Event><EventKey><![CDATA[FLOW_VERIFY]]></EventKey></xml>")
TEXT = ("<xml><ToUserName><![CDATA[gh_bench]]></ToUserName><FromUserName><![CDATA[{openid}]]>"
        "</FromUserName><CreateTime>{time}</CreateTime><MsgType><![CDATA[text]]></MsgType>"
        "<Content><![CDATA[张三]]></Content><MsgId>{msgid}</MsgId></xml>")


def sign(*parts: str) -> str:
    """WeChat's signature: sha1 of the sorted parts joined."""
    return hashlib.sha1("".join(sorted(parts)).encode()).hexdigest()


def deliveries(count: int, residents: int, run: int):
    """Yields (openid, xml) for `count` conversation steps of run number `run`."""
    base = 1_700_000_000 + run * 10_000_000
    for n in range(count):
        block, pos = divmod(n, 2 * BLOCK)
        slot = block * BLOCK + pos % BLOCK
        openid = f"oBench{(slot + run * 7919) % residents:07d}"
        if pos < BLOCK:
            yield openid, CLICK.format(openid=openid, time=base + n)
        else:
            yield openid, TEXT.format(openid=openid, time=base + n, msgid=base * 1000 + n)


def write(path: Path, count: int, residents: int, run: int, mode: str) -> None:
    """Writes one file of signed deliveries in plain or safe mode."""
    ts, nonce = "1700000000", "bench"
    plain_query = urlencode({"signature": sign(TOKEN, ts, nonce), "timestamp": ts, "nonce": nonce,
                             "openid": "x"})
    crypto = WeChatCrypto(TOKEN, AES_KEY, APPID) if mode == "safe" else None
    with open(path, "w", encoding="utf-8") as fh:
        for openid, xml in deliveries(count, residents, run):
            if crypto is None:
                fh.write(f"/wechat?{plain_query}\t{xml}\n")
                continue
            encrypted = crypto.encrypt_message(xml, nonce, ts)
            start = encrypted.index("<Encrypt><![CDATA[") + len("<Encrypt><![CDATA[")
            blob = encrypted[start:encrypted.index("]]></Encrypt>")]
            query = urlencode({"signature": sign(TOKEN, ts, nonce), "timestamp": ts, "nonce": nonce,
                               "openid": openid, "encrypt_type": "aes",
                               "msg_signature": sign(TOKEN, ts, nonce, blob)})
            body = f"<xml><ToUserName><![CDATA[gh_bench]]></ToUserName><Encrypt><![CDATA[{blob}]]></Encrypt></xml>"
            fh.write(f"/wechat?{query}\t{body}\n")


def main(argv=None) -> int:
    """CLI: messages.py OUT COUNT RESIDENTS RUN MODE."""
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("out", type=Path)
    p.add_argument("count", type=int)
    p.add_argument("residents", type=int)
    p.add_argument("run", type=int)
    p.add_argument("mode", choices=("plain", "safe"))
    a = p.parse_args(argv)
    write(a.out, a.count, a.residents, a.run, a.mode)
    return 0


if __name__ == "__main__":
    sys.exit(main())
