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
from twilio.request_validator import RequestValidator
from urllib.parse import urlencode

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


def event(method, path, body=None, claims=None, bearer=None, content_type="application/json", b64=False, iam=False, route=None, query=""):
    headers = {"host": "abc123.execute-api.us-east-1.amazonaws.com", "user-agent": "Mozilla/5.0"}
    if body is not None and content_type:
        headers["content-type"] = content_type
    if bearer:
        headers["authorization"] = f"Bearer {bearer}"
    context = {
        "accountId": "123456789012", "apiId": "abc123", "domainName": "abc123.execute-api.us-east-1.amazonaws.com",
        "domainPrefix": "abc123",
        "http": {"method": method, "path": path, "protocol": "HTTP/1.1", "sourceIp": "198.51.100.7", "userAgent": "Mozilla/5.0"},
        "requestId": "JKJaXmPLvHcESHA=", "routeKey": f"{method} {route or path}", "stage": "$default",
        "time": "21/Nov/2026:19:00:00 +0000", "timeEpoch": 1795287600000,
    }
    if claims is not None:
        context["authorizer"] = {"jwt": {"claims": claims, "scopes": None}}
    if iam:
        context["authorizer"] = {"iam": {
            "accessKey": "AKIAIOSFODNN7EXAMPLE", "accountId": "123456789012", "callerId": "AROAEXAMPLE:saas-backend",
            "principalOrgId": None, "userArn": "arn:aws:sts::123456789012:assumed-role/saas-backend/worker",
            "userId": "AROAEXAMPLE:saas-backend"}}
    if body is not None and b64:
        body = base64.b64encode(body.encode()).decode()
    result = {"version": "2.0", "routeKey": f"{method} {route or path}", "rawPath": path, "rawQueryString": query,
            "headers": headers, "requestContext": context, "body": body, "isBase64Encoded": b64}
    if query:
        result["queryStringParameters"] = dict(pair.split("=", 1) for pair in query.split("&"))
    return result


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
    "200-jwt-ttl-3600": event("POST", "/token", body='{"ttl_seconds": 3600}', bearer=good),
    "400-jwt-ttl-86400-above-the-default-maximum": event("POST", "/token", body='{"ttl_seconds": 86400}', bearer=good),
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

# The asset routes run against the scenario of events/README.md: asset a-1 owned by u-1; group
# designers = {u-2} holds writer; u-3 holds a direct reader grant; u-4 has nothing.
A = authorizer_claims
ACCESS = "/assets/{asset_id}/access"
GRANT = "/assets/{asset_id}/grants/{principal}"
access = {
    "200-authorizer-owner": event("GET", "/assets/a-1/access", claims=A("u-1"), route=ACCESS),
    "200-authorizer-writer-via-group": event("GET", "/assets/a-1/access", claims=A("u-2"), route=ACCESS),
    "200-authorizer-direct-reader": event("GET", "/assets/a-1/access", claims=A("u-3"), route=ACCESS),
    "200-authorizer-no-access": event("GET", "/assets/a-1/access", claims=A("u-4"), route=ACCESS),
    "200-authorizer-missing-asset-is-role-none": event("GET", "/assets/a-404/access", claims=A("u-1"), route=ACCESS),
    "200-authorizer-encoded-asset-id": event("GET", "/assets/doc%231%2Fv2/access", claims=A("u-1"), route=ACCESS),
    "200-jwt-owner": event("GET", "/assets/a-1/access", bearer=session("u-1"), route=ACCESS),
    "200-authorizer-batch": event("POST", "/access/check", body='{"asset_ids": ["a-1", "a-404"]}', claims=A("u-2")),
    "400-authorizer-batch-empty": event("POST", "/access/check", body='{"asset_ids": []}', claims=A("u-2")),
    "400-authorizer-batch-over-100": event("POST", "/access/check", body=json.dumps({"asset_ids": [f"a-{i}" for i in range(101)]}), claims=A("u-2")),
    "400-authorizer-batch-duplicates": event("POST", "/access/check", body='{"asset_ids": ["a-1", "a-1"]}', claims=A("u-2")),
    "400-authorizer-batch-no-body": event("POST", "/access/check", claims=A("u-2")),
    "400-authorizer-control-character-in-id": event("GET", "/assets/a%00/access", claims=A("u-1"), route=ACCESS),
    "401-authorizer-no-session": event("GET", "/assets/a-1/access", route=ACCESS),
    "401-jwt-expired-session": event("GET", "/assets/a-1/access", bearer=session("u-1", exp=1600000000), route=ACCESS),
    "405-authorizer-post-access": event("POST", "/assets/a-1/access", claims=A("u-1"), route=ACCESS),
}
sharing = {
    "200-authorizer-list-as-owner": event("GET", "/assets/a-1/grants", claims=A("u-1"), route="/assets/{asset_id}/grants"),
    "200-authorizer-list-as-writer": event("GET", "/assets/a-1/grants", claims=A("u-2"), route="/assets/{asset_id}/grants"),
    "403-authorizer-list-as-reader": event("GET", "/assets/a-1/grants", claims=A("u-3"), route="/assets/{asset_id}/grants"),
    "403-authorizer-list-missing-asset": event("GET", "/assets/a-404/grants", claims=A("u-1"), route="/assets/{asset_id}/grants"),
    "200-authorizer-grant-reader": event("PUT", "/assets/a-1/grants/user:u-5", body='{"role": "reader"}', claims=A("u-1"), route=GRANT),
    "200-authorizer-grant-group-writer-expiring": event("PUT", "/assets/a-1/grants/group:reviewers", body='{"role": "writer", "expires_at": "2099-01-01T00:00:00Z"}', claims=A("u-1"), route=GRANT),
    "400-authorizer-grant-to-owner": event("PUT", "/assets/a-1/grants/user:u-1", body='{"role": "reader"}', claims=A("u-1"), route=GRANT),
    "400-authorizer-grant-owner-role": event("PUT", "/assets/a-1/grants/user:u-5", body='{"role": "owner"}', claims=A("u-1"), route=GRANT),
    "400-authorizer-grant-past-expiry": event("PUT", "/assets/a-1/grants/user:u-5", body='{"role": "reader", "expires_at": "2020-01-01T00:00:00Z"}', claims=A("u-1"), route=GRANT),
    "400-authorizer-bad-principal": event("PUT", "/assets/a-1/grants/u-5", body='{"role": "reader"}', claims=A("u-1"), route=GRANT),
    "403-authorizer-grant-by-writer": event("PUT", "/assets/a-1/grants/user:u-5", body='{"role": "reader"}', claims=A("u-2"), route=GRANT),
    "403-authorizer-grant-on-missing-asset": event("PUT", "/assets/a-404/grants/user:u-5", body='{"role": "reader"}', claims=A("u-1"), route=GRANT),
    "204-authorizer-revoke": event("DELETE", "/assets/a-1/grants/user:u-3", claims=A("u-1"), route=GRANT),
    "204-authorizer-revoke-absent-grant": event("DELETE", "/assets/a-1/grants/user:u-9", claims=A("u-1"), route=GRANT),
    "403-authorizer-revoke-by-non-owner": event("DELETE", "/assets/a-1/grants/user:u-3", claims=A("u-3"), route=GRANT),
    "401-authorizer-no-session": event("PUT", "/assets/a-1/grants/user:u-5", body='{"role": "reader"}', route=GRANT),
    "415-authorizer-grant-form-body": event("PUT", "/assets/a-1/grants/user:u-5", body="role=reader", content_type="application/x-www-form-urlencoded", claims=A("u-1"), route=GRANT),
}
ASSET = "/admin/assets/{asset_id}"
MEMBER = "/admin/groups/{group_id}/members/{user_id}"
admin = {
    "201-iam-create-asset": event("PUT", "/admin/assets/a-new", body='{"owner": "u-1", "type": "document", "name": "Spec"}', iam=True, route=ASSET),
    "200-iam-replace-asset-new-owner": event("PUT", "/admin/assets/a-1", body='{"owner": "u-3", "type": "document", "name": "Plan"}', iam=True, route=ASSET),
    "400-iam-unknown-asset-type": event("PUT", "/admin/assets/a-new", body='{"owner": "u-1", "type": "spreadsheet"}', iam=True, route=ASSET),
    "400-iam-owner-like-user-sid": event("PUT", "/admin/assets/a-new", body=json.dumps({"owner": "US" + "0a" * 16, "type": "image"}), iam=True, route=ASSET),
    "204-iam-delete-asset": event("DELETE", "/admin/assets/a-1", iam=True, route=ASSET),
    "204-iam-add-member": event("PUT", "/admin/groups/designers/members/u-4", iam=True, route=MEMBER),
    "204-iam-remove-member": event("DELETE", "/admin/groups/designers/members/u-2", iam=True, route=MEMBER),
    "200-iam-list-members": event("GET", "/admin/groups/designers/members", iam=True, route="/admin/groups/{group_id}/members"),
    "403-none-not-iam-signed": event("PUT", "/admin/assets/a-new", body='{"owner": "u-1", "type": "document"}', route=ASSET),
    "403-authorizer-session-is-not-iam": event("DELETE", "/admin/assets/a-1", claims=A("u-1"), route=ASSET),
    "405-iam-post-asset": event("POST", "/admin/assets/a-1", body="{}", iam=True, route=ASSET),
    "204-iam-offboard-user": event("DELETE", "/admin/users/u-2", iam=True, route="/admin/users/{user_id}"),
    "204-iam-offboard-unknown-user": event("DELETE", "/admin/users/u-404", iam=True, route="/admin/users/{user_id}"),
    "400-iam-offboard-user-like-user-sid": event("DELETE", "/admin/users/US" + "0a" * 16, iam=True, route="/admin/users/{user_id}"),
    "405-iam-get-user": event("GET", "/admin/users/u-2", iam=True, route="/admin/users/{user_id}"),
    "204-iam-lift-offboarding": event("PUT", "/admin/users/u-2", iam=True, route="/admin/users/{user_id}"),
    "400-iam-offboard-invisible-character": event("DELETE", "/admin/users/u%E2%80%8B2", iam=True, route="/admin/users/{user_id}"),
}

# The conversations events also run against a Twilio stand-in holding the room `support` and the
# direct conversation of u-1 and u-2.
C = "/conversations"
conversations = {
    "201-authorizer-direct-new": event("POST", C, body='{"type": "direct", "participant": "u-5"}', claims=A("u-1")),
    "200-authorizer-direct-existing-from-the-other-side": event("POST", C, body='{"type": "direct", "participant": "u-1"}', claims=A("u-2")),
    "201-authorizer-group": event("POST", C, body='{"type": "group", "friendly_name": "Design review", "participants": ["u-2", "u-3"]}', claims=A("u-1")),
    "201-authorizer-asset-new": event("POST", C, body='{"type": "asset", "asset_id": "a-1", "participants": ["u-2", "u-3"]}', claims=A("u-1")),
    "403-authorizer-asset-participant-without-access": event("POST", C, body='{"type": "asset", "asset_id": "a-1", "participants": ["u-4"]}', claims=A("u-1")),
    "403-authorizer-asset-caller-without-access": event("POST", C, body='{"type": "asset", "asset_id": "a-1"}', claims=A("u-4")),
    "200-authorizer-room-join": event("POST", C, body='{"type": "room", "name": "support"}', claims=A("u-4")),
    "404-authorizer-room-missing": event("POST", C, body='{"type": "room", "name": "sales"}', claims=A("u-1")),
    "400-authorizer-unknown-type": event("POST", C, body='{"type": "channel", "name": "x"}', claims=A("u-1")),
    "400-authorizer-direct-with-self": event("POST", C, body='{"type": "direct", "participant": "u-1"}', claims=A("u-1")),
    "400-authorizer-too-many-participants": event("POST", C, body=json.dumps({"type": "group", "friendly_name": "All", "participants": [f"u-{i}" for i in range(51)]}), claims=A("u-1")),
    "401-authorizer-no-session": event("POST", C, body='{"type": "direct", "participant": "u-2"}'),
    "200-authorizer-list": event("GET", C, claims=A("u-1")),
    "200-authorizer-list-with-messages": event("GET", C, claims=A("u-1"), query="messages=5"),
    "200-jwt-list": event("GET", C, bearer=session("u-2")),
    "400-authorizer-list-too-many-messages": event("GET", C, claims=A("u-1"), query="messages=21"),
    "400-authorizer-list-forged-page-token": event("GET", C, claims=A("u-1"), query="page_token=aHR0cHM6Ly9ldmlsLmV4YW1wbGUv"),
    "405-authorizer-delete": event("DELETE", C, claims=A("u-1")),
}

# Twilio's pre-event webhook, signed with the auth token of local.env over TWILIO_WEBHOOK_URL as
# Twilio signs it. The stand-in holds the asset conversation `conv-a-1` (about a-1) and the
# direct conversation `conv-direct`; participant events name them by these unique names, which
# the stand-in resolves like SIDs.
AUTH_TOKEN = "chatgate-events-auth-token"
WEBHOOK_URL = "https://abc123.execute-api.us-east-1.amazonaws.com/twilio/events"
VALIDATOR = RequestValidator(AUTH_TOKEN)


class Form(dict):
    def __init__(self, pairs):
        super().__init__(pairs)
        self.pairs = pairs

    def getall(self, name):
        return [v for k, v in self.pairs if k == name]


def twilio_event(params, signature="sign", url=WEBHOOK_URL, b64=True, method="POST"):
    pairs = list(params.items())
    body = urlencode(pairs)
    ev = event(method, "/twilio/events", body=body, content_type="application/x-www-form-urlencoded; charset=UTF-8", b64=b64)
    ev["headers"]["user-agent"] = "TwilioProxy/1.1"
    if signature == "sign":
        ev["headers"]["x-twilio-signature"] = VALIDATOR.compute_signature(url, Form(pairs))
    elif signature is not None:
        ev["headers"]["x-twilio-signature"] = signature
    return ev


def message(author, attributes=None, client=None):
    params = {"EventType": "onMessageAdd", "AccountSid": "AC00000000000000000000000000000001",
              "ChatServiceSid": "IS00000000000000000000000000000001", "ConversationSid": "CH00000000000000000000000000000007",
              "Author": author, "Body": "see the doc", "Source": "SDK", "RetryCount": "0"}
    if client:
        params["ClientIdentity"] = client
    if attributes is not None:
        params["Attributes"] = attributes
    return params


def edit(author, attributes=None, client=None):
    params = message(author, attributes, client)
    params.update({"EventType": "onMessageUpdate", "MessageSid": "IM00000000000000000000000000000009", "Index": "4"})
    return params


def update(conversation, attributes, unique_name, friendly_name="Plan", client="u-3"):
    return {"EventType": "onConversationUpdate", "AccountSid": "AC00000000000000000000000000000001",
            "ChatServiceSid": "IS00000000000000000000000000000001", "ConversationSid": conversation,
            "Attributes": attributes, "UniqueName": unique_name, "FriendlyName": friendly_name,
            "ClientIdentity": client, "Source": "SDK", "RetryCount": "0"}


def join(conversation, identity):
    return {"EventType": "onParticipantAdd", "ChatServiceSid": "IS00000000000000000000000000000001",
            "ConversationSid": conversation, "Identity": identity, "Source": "API", "RetryCount": "0"}


REF = '{"assetRef": "a-1", "assetType": "document", "permissions": "inherited"}'
guard = {
    "200-none-message-without-reference": twilio_event(message("u-4", '{"mood": "happy"}', "u-4")),
    "200-none-message-reference-reader": twilio_event(message("u-3", REF, "u-3")),
    "200-none-message-reference-owner-plain-body": twilio_event(message("u-1", REF, "u-1"), b64=False),
    "200-none-rest-message-author-reads": twilio_event(message("u-2", REF)),
    "403-none-message-reference-non-reader": twilio_event(message("u-4", REF, "u-4")),
    "403-none-client-identity-overrides-author": twilio_event(message("u-1", REF, "u-4")),
    "403-none-malformed-reference": twilio_event(message("u-1", '{"assetRef": "a-1", "assetType": "spreadsheet"}', "u-1")),
    "403-none-missing-signature": twilio_event(message("u-1", REF, "u-1"), signature=None),
    "403-none-wrong-signature": twilio_event(message("u-1", REF, "u-1"), signature="RSOYDt4T1cUTdK1PDd93/VVr8B8="),
    "403-none-signed-for-another-url": twilio_event(message("u-1", REF, "u-1"), url="https://evil.example.com/twilio/events"),
    "200-none-reader-joins-asset-conversation": twilio_event(join("conv-a-1", "u-3")),
    "403-none-non-reader-joins-asset-conversation": twilio_event(join("conv-a-1", "u-4")),
    "403-none-client-adds-to-direct-conversation": twilio_event(join("conv-direct", "u-4")),
    "200-none-other-event": twilio_event({"EventType": "onUserUpdate", "ChatServiceSid": "IS00000000000000000000000000000001", "Identity": "u-4", "ClientIdentity": "u-4"}),
    "403-none-client-creates-conversation": twilio_event({"EventType": "onConversationAdd", "ChatServiceSid": "IS00000000000000000000000000000001", "ClientIdentity": "u-4", "UniqueName": "asset:guessed", "Source": "SDK"}),
    "405-none-get": twilio_event(message("u-1", REF, "u-1"), method="GET"),
    "200-none-edit-reference-reader": twilio_event(edit("u-3", REF, "u-3")),
    "403-none-edit-adds-reference-non-reader": twilio_event(edit("u-4", REF, "u-4")),
    "403-none-edit-malformed-reference": twilio_event(edit("u-1", '{"assetRef": ""}', "u-1")),
    "200-none-rename-asset-conversation": twilio_event(update("conv-a-1", '{"type":"asset","asset_id":"a-1"}', "conv-a-1", "Plan, again")),
    "403-none-retarget-asset-conversation": twilio_event(update("conv-a-1", '{"type":"asset","asset_id":"a-2"}', "conv-a-1")),
    "403-none-rename-unique-name-of-asset-conversation": twilio_event(update("conv-a-1", '{"type":"asset","asset_id":"a-1"}', "conv-a-2")),
    "403-none-direct-conversation-made-an-asset-one": twilio_event(update("conv-direct", '{"type":"asset","asset_id":"a-1"}', "conv-direct")),
}

# The reconciler's triggers: the table's stream, as Lambda delivers a batch (view type
# NEW_AND_OLD_IMAGES), and EventBridge's schedule. They run against the state *after* the changes
# (events/README.md): the reconciler re-reads the ACL and never trusts a record's images.
STREAM_ARN = "arn:aws:dynamodb:us-east-1:123456789012:table/chatgate-AclTable-1ABCDEFGH/stream/2026-11-21T19:00:00.000"
sequence = [110000000000000000000]


def S(value):
    return {"S": value}


def record(name, keys, old=None, new=None):
    sequence[0] += 100
    data = {"ApproximateCreationDateTime": 1795287600, "Keys": keys, "SequenceNumber": str(sequence[0]),
            "SizeBytes": 64, "StreamViewType": "NEW_AND_OLD_IMAGES"}
    if old is not None:
        data["OldImage"] = old
    if new is not None:
        data["NewImage"] = new
    return {"eventID": f"{sequence[0]:x}", "eventName": name, "eventVersion": "1.1", "eventSource": "aws:dynamodb",
            "awsRegion": "us-east-1", "dynamodb": data, "eventSourceARN": STREAM_ARN}


def keys(pk, sk):
    return {"pk": S(pk), "sk": S(sk)}


def item(pk, sk, **attributes):
    return {**keys(pk, sk), **attributes}


def stream(*records):
    return {"Records": list(records)}


def removed(pk, sk, **attributes):
    return record("REMOVE", keys(pk, sk), old=item(pk, sk, **attributes))


asset_record = lambda owner: item("A#a-1", "#ASSET", owner=S(owner), kind=S("document"), name=S("Plan"), updated_at={"N": "1795287000"}, g=S("n3Kx_q8Z"))
reconciler = {
    "1-stream-user-grant-deleted": stream(removed("A#a-1", "G#user:u-3", r=S("r"), g=S("n3Kx_q8Z"))),
    "3-stream-group-grant-deleted": stream(removed("A#a-1", "G#group:designers", r=S("w"), g=S("n3Kx_q8Z"))),
    "1-stream-member-removed": stream(removed("U#u-2", "M#designers")),
    "3-stream-owner-changed": stream(record("MODIFY", keys("A#a-1", "#ASSET"), old=asset_record("u-9"), new=asset_record("u-1"))),
    "3-stream-asset-deleted": stream(removed("A#a-1", "#ASSET", owner=S("u-1"), kind=S("document"), g=S("n3Kx_q8Z"))),
    "0-stream-late-record-access-restored": stream(removed("A#a-2", "G#user:u-6", r=S("r"), g=S("Zq8_xK3n"))),
    "0-stream-grant-written": stream(record("INSERT", keys("A#a-1", "G#user:u-8"), new=item("A#a-1", "G#user:u-8", r=S("r"), g=S("n3Kx_q8Z")))),
    "0-stream-asset-renamed": stream(record("MODIFY", keys("A#a-1", "#ASSET"), old=asset_record("u-1"), new=asset_record("u-1"))),
    "1-stream-same-revocation-three-times": stream(*[removed("A#a-1", "G#user:u-3", r=S("r"), g=S("n3Kx_q8Z")) for _ in range(3)]),
    "0-stream-unreadable-record-set-aside": stream(removed("A#a-1", "G#user#" + "ab" * 32, r=S("r"), g=S("n3Kx_q8Z"))),
    "1-schedule-expiry-sweep": {"version": "0", "id": "53dc4d37-cffa-4f76-80c9-8b7d4a4d2eaa", "detail-type": "Scheduled Event",
                                 "source": "aws.events", "account": "123456789012", "time": "2026-11-21T19:02:00Z", "region": "us-east-1",
                                 "resources": ["arn:aws:events:us-east-1:123456789012:rule/chatgate-ReconcilerFunctionExpirySweep-1ABC"],
                                 "detail": {}},
    # The scheduled pass (template.yaml's FullReconcile schedule, whose Input is this object):
    # every registered asset conversation re-decided.
    "3-schedule-full-reconcile": {"task": "full-reconcile"},
}

for function, cases in {"token": token, "access": access, "sharing": sharing, "admin": admin, "conversations": conversations, "message-guard": guard, "reconciler": reconciler}.items():
    folder = HERE / function
    folder.mkdir(exist_ok=True)
    for old in folder.glob("*.json"):
        old.unlink()
    for name, ev in cases.items():
        (folder / f"{name}.json").write_text(json.dumps(ev, indent=2) + "\n")
    print(f"{len(cases)} events in {folder}")
