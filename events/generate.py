#!/usr/bin/env python3
"""Writes events/<function>/<status>-<mode>-<case>.json: API Gateway HTTP API (v2) events for
every case of each route. Sessions in jwt mode are signed with the test secret in events/local.env
and expire in 2100 (or in 2020 for the expired case). Run with the venv's python (PyJWT comes
with twilio): .venv/bin/python events/generate.py
"""

import base64
import json
import pathlib

import jwt

SECRET = "chatgate-events-session-secret-0123456789"
ISSUER = "https://idp.test/"
AUDIENCE = "chatgate-tests"
FAR = 4102444800  # 2100-01-01
HERE = pathlib.Path(__file__).parent


def session(sub="u-123", **overrides):
    claims = {"sub": sub, "iss": ISSUER, "aud": AUDIENCE, "iat": 1795000000, "nbf": 1795000000, "exp": FAR}
    claims.update(overrides)
    return jwt.encode(claims, SECRET, algorithm="HS256")


def b64url(data):
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def event(method, path, body=None, claims=None, bearer=None, content_type="application/json", b64=False):
    headers = {"host": "abc123.execute-api.us-east-1.amazonaws.com", "user-agent": "Mozilla/5.0"}
    if body is not None and content_type:
        headers["content-type"] = content_type
    if bearer:
        headers["authorization"] = f"Bearer {bearer}"
    context = {
        "accountId": "123456789012", "apiId": "abc123", "domainName": "abc123.execute-api.us-east-1.amazonaws.com",
        "domainPrefix": "abc123",
        "http": {"method": method, "path": path, "protocol": "HTTP/1.1", "sourceIp": "198.51.100.7", "userAgent": "Mozilla/5.0"},
        "requestId": "JKJaXmPLvHcESHA=", "routeKey": f"{method} {path}", "stage": "$default",
        "time": "21/Nov/2026:19:00:00 +0000", "timeEpoch": 1795287600000,
    }
    if claims is not None:
        context["authorizer"] = {"jwt": {"claims": claims, "scopes": None}}
    if body is not None and b64:
        body = base64.b64encode(body.encode()).decode()
    return {"version": "2.0", "routeKey": f"{method} {path}", "rawPath": path, "rawQueryString": "",
            "headers": headers, "requestContext": context, "body": body, "isBase64Encoded": b64}


def authorizer_claims(sub="u-123"):
    return {"sub": sub, "iss": ISSUER, "aud": AUDIENCE, "exp": str(FAR), "iat": "1795000000"}


good = session()
header, payload, signature = good.split(".")
tampered = ".".join([header, b64url(json.dumps({"sub": "admin", "iss": ISSUER, "aud": AUDIENCE, "exp": FAR}).encode()), signature])
alg_none = ".".join([b64url(b'{"alg":"none","typ":"JWT"}'), payload, ""])

token = {
    "200-authorizer-valid": event("POST", "/token", claims=authorizer_claims()),
    "200-authorizer-ttl-180": event("POST", "/token", body='{"ttl_seconds": 180}', claims=authorizer_claims()),
    "200-authorizer-base64-body": event("POST", "/token", body='{"ttl_seconds": 900}', claims=authorizer_claims(), b64=True),
    "200-jwt-valid": event("POST", "/token", bearer=good),
    "200-jwt-ttl-86400": event("POST", "/token", body='{"ttl_seconds": 86400}', bearer=good),
    "400-authorizer-ttl-too-short": event("POST", "/token", body='{"ttl_seconds": 179}', claims=authorizer_claims()),
    "400-authorizer-ttl-too-long": event("POST", "/token", body='{"ttl_seconds": 86401}', claims=authorizer_claims()),
    "400-authorizer-malformed-json": event("POST", "/token", body='{"ttl_seconds": ', claims=authorizer_claims()),
    "400-authorizer-unknown-field": event("POST", "/token", body='{"identity": "u-999"}', claims=authorizer_claims()),
    "400-authorizer-identity-like-user-sid": event("POST", "/token", claims=authorizer_claims("US" + "0a" * 16)),
    "400-jwt-identity-too-long": event("POST", "/token", bearer=session("x" * 257)),
    "401-authorizer-no-session": event("POST", "/token"),
    "401-jwt-no-session": event("POST", "/token"),
    "401-jwt-expired-session": event("POST", "/token", bearer=session(exp=1600000000)),
    "401-jwt-not-yet-valid": event("POST", "/token", bearer=session(nbf=FAR - 10)),
    "401-jwt-wrong-issuer": event("POST", "/token", bearer=session(iss="https://evil.test/")),
    "401-jwt-wrong-audience": event("POST", "/token", bearer=session(aud="another-app")),
    "401-jwt-alg-none": event("POST", "/token", bearer=alg_none),
    "401-jwt-tampered": event("POST", "/token", bearer=tampered),
    "401-jwt-wrong-secret": event("POST", "/token", bearer=jwt.encode({"sub": "u-123", "iss": ISSUER, "aud": AUDIENCE, "exp": FAR}, "x" * 40, algorithm="HS256")),
    "405-authorizer-get": event("GET", "/token", claims=authorizer_claims()),
    "415-authorizer-text-body": event("POST", "/token", body="ttl_seconds=600", claims=authorizer_claims(), content_type="text/plain"),
}

for function, cases in {"token": token}.items():
    folder = HERE / function
    folder.mkdir(exist_ok=True)
    for old in folder.glob("*.json"):
        old.unlink()
    for name, ev in cases.items():
        (folder / f"{name}.json").write_text(json.dumps(ev, indent=2) + "\n")
    print(f"{len(cases)} events in {folder}")
