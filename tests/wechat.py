"""A test helper that plays WeChat's side: signed (and encrypted) XML posted to /wechat."""
from __future__ import annotations

import itertools
import secrets
import time

import xmltodict
from wechatpy.crypto import WeChatCrypto

from bot.webhook import sign

_ids = itertools.count(int(time.time()) * 1000)


class WeChatSim:
    """Builds messages, posts them, and returns the decoded reply."""

    def __init__(self, app, client, mode: str = "plain"):
        self.app = app
        self.client = client
        self.mode = mode
        wx = app.config["REDSTEWARD"]["wechat"]
        self.token = wx["token"]
        self.crypto = WeChatCrypto(wx["token"], wx["encoding_aes_key"], wx["appid"]) \
            if wx["encoding_aes_key"] else None
        self.clock = int(time.time())

    def xml(self, openid: str, msg_type: str, **fields) -> str:
        """The XML of one message from `openid`; MsgId and CreateTime unique unless given."""
        self.clock += 1
        data = {"ToUserName": "gh_test", "FromUserName": openid,
                "CreateTime": fields.pop("CreateTime", self.clock), "MsgType": msg_type}
        if msg_type != "event":
            data["MsgId"] = fields.pop("MsgId", next(_ids))
        data.update(fields)
        return xmltodict.unparse({"xml": data}, full_document=False)

    def post_raw(self, body: bytes | str, mode: str | None = None, **args):
        """Posts a body with a valid signature (and msg_signature in encrypted modes)."""
        mode = mode or self.mode
        ts, nonce = args.pop("timestamp", str(int(time.time()))), secrets.token_hex(4)
        query = {"timestamp": ts, "nonce": nonce, "signature": sign(self.token, ts, nonce),
                 "openid": "x"}
        if isinstance(body, str):
            body = body.encode()
        if mode in ("compatible", "safe"):
            enc = self.crypto.encrypt_message(body.decode(), nonce, ts)
            outer = xmltodict.parse(enc)["xml"]
            query.update(encrypt_type="aes", msg_signature=outer["MsgSignature"])
            if mode == "compatible":
                # Compatible mode carries the plaintext fields beside <Encrypt>.
                plain = xmltodict.parse(body)["xml"]
                plain["Encrypt"] = outer["Encrypt"]
                enc = xmltodict.unparse({"xml": plain}, full_document=False)
            body = enc.encode()
        query.update(args)
        return self.client.post("/wechat", query_string=query, data=body)

    def send(self, openid: str, msg_type: str = "text", **fields) -> dict:
        """Posts one message and returns the reply as a dict (type none/text/news)."""
        return self.decode(self.post_raw(self.xml(openid, msg_type, **fields)))

    def text(self, openid: str, content: str, **fields) -> str:
        """Sends a text and returns the reply text ('' when no reply)."""
        return self.send(openid, "text", Content=content, **fields).get("Content", "")

    def click(self, openid: str, key: str) -> str:
        """Clicks a menu button and returns the reply text."""
        return self.send(openid, "event", Event="CLICK", EventKey=key).get("Content", "")

    def decode(self, resp) -> dict:
        """Decodes a reply, decrypting it in encrypted modes."""
        assert resp.status_code == 200, (resp.status_code, resp.get_data(as_text=True)[:200])
        text = resp.get_data(as_text=True)
        if text in ("success", ""):
            return {"MsgType": "none"}
        outer = xmltodict.parse(text)["xml"]
        if "Encrypt" in outer:
            text = self.crypto.decrypt_message(text, outer["MsgSignature"], outer["TimeStamp"],
                                               outer["Nonce"])
        return xmltodict.parse(text)["xml"]
