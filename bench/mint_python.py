"""Mints the same Twilio access token N times with twilio-python (PyPI `twilio`) and prints the
rate as one machine-readable line, for bench/token-throughput.

    .venv/bin/python bench/mint_python.py [N] [--token]

prints `impl=twilio-python n=N seconds=S tokens_per_s=R`; `--token` prints one token instead.
"""

import sys
import time

from twilio.jwt.access_token import AccessToken
from twilio.jwt.access_token.grants import ChatGrant

# The same inputs as shared/examples/mint_throughput.rs and bench/mint_node.js.
ACCOUNT_SID = "AC0123456789abcdef0123456789abcdef"
API_KEY_SID = "SK0123456789abcdef0123456789abcdef"
API_KEY_SECRET = "bench-api-key-secret-0123456789abcdef"
SERVICE_SID = "IS0123456789abcdef0123456789abcdef"
IDENTITY = "alice@example.com"
TTL_SECONDS = 3600


def mint():
    """Per token, what a handler does per request with the helper library: build, grant, sign."""
    token = AccessToken(ACCOUNT_SID, API_KEY_SID, API_KEY_SECRET, identity=IDENTITY, ttl=TTL_SECONDS,
                        grants=[ChatGrant(service_sid=SERVICE_SID)])
    return token.to_jwt()


def main(args):
    if "--token" in args:
        print(mint())
        return 0
    try:
        n = int(args[0]) if args else 10000
    except ValueError:
        n = 0
    if n <= 0:
        print("usage: mint_python.py [N > 0] [--token]", file=sys.stderr)
        return 2
    for _ in range(min(n, 10000)):  # warm-up, as the other two do
        mint()
    size = 0
    started = time.perf_counter()
    for _ in range(n):
        size += len(mint())
    seconds = time.perf_counter() - started
    assert size > 0
    print(f"impl=twilio-python n={n} seconds={seconds:.6f} tokens_per_s={n / seconds:.0f}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
