"""Oracle: twilio-python's own AccessToken.

stdin: {"mint": [case, ...], "verify": [{"jwt": ..., "secret": ...}, ...]}
  case: {"account_sid", "api_key_sid", "secret", "service_sid", "identity", "ttl", "now",
         "push_credential_sid"?}
stdout: {"minted": [jwt, ...], "verified": [{"ok": bool, "headers": {...}, "payload": {...}, "error": str}, ...]}
"""

import json
import sys
import time
from unittest import mock

from twilio.jwt import JwtDecodeError
from twilio.jwt.access_token import AccessToken
from twilio.jwt.access_token.grants import ChatGrant


def mint(case):
    grant = ChatGrant(service_sid=case["service_sid"], push_credential_sid=case.get("push_credential_sid"))
    token = AccessToken(case["account_sid"], case["api_key_sid"], case["secret"],
                        identity=case["identity"], ttl=case["ttl"], grants=[grant])
    with mock.patch.object(time, "time", return_value=float(case["now"])):
        return token.to_jwt()


def verify(item):
    try:
        decoded = AccessToken.from_jwt(item["jwt"], item["secret"])
        return {"ok": True, "headers": decoded.headers, "payload": decoded.payload}
    except JwtDecodeError as e:
        return {"ok": False, "error": str(e)}


request = json.load(sys.stdin)
json.dump({"minted": [mint(c) for c in request.get("mint", [])],
           "verified": [verify(v) for v in request.get("verify", [])]}, sys.stdout)
