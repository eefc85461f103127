"""Oracle: twilio-python's own RequestValidator.

stdin: [{"token": ..., "url": ..., "params": [[name, value], ...]}, ...]
stdout: [signature, ...] as RequestValidator.compute_signature gives them (repeated names kept).
"""

import json
import sys

from twilio.request_validator import RequestValidator


class Params(dict):
    """A multi-valued form, the way web frameworks hand it to RequestValidator."""

    def __init__(self, pairs):
        super().__init__()
        self.pairs = pairs
        for name, value in pairs:
            self.setdefault(name, value)

    def getall(self, name):
        return [value for key, value in self.pairs if key == name]


cases = json.load(sys.stdin)
json.dump([RequestValidator(c["token"]).compute_signature(c["url"], Params(c["params"])) for c in cases], sys.stdout)
