"""Verifies a delivery captured from Chasqui with independent implementations: the
`standardwebhooks` package (webhook-id / webhook-timestamp / webhook-signature) and Python's
own hmac for Kapso's X-Webhook-Signature. Usage: verify_webhook.py CAPTURE.json, where the
file holds {"secret", "headers" (lower-case names), "body_base64"}. Exits non-zero on failure.
"""

import base64
import hashlib
import hmac
import json
import sys

from standardwebhooks import Webhook

capture = json.load(open(sys.argv[1]))
secret = capture["secret"]
headers = capture["headers"]
body = base64.b64decode(capture["body_base64"])

# Standard Webhooks: raises on a bad signature or a stale timestamp.
Webhook(secret).verify(body, headers)

# Kapso: lowercase hex HMAC-SHA256 of the raw body, keyed with the whole secret string.
expected = hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()
if not hmac.compare_digest(expected, headers["x-webhook-signature"]):
    sys.exit("X-Webhook-Signature does not verify")

# A tampered body must fail both.
try:
    Webhook(secret).verify(body + b" ", headers)
except Exception:  # noqa: BLE001 - any verification error is the expected outcome
    pass
else:
    sys.exit("standardwebhooks accepted a tampered body")
print(json.dumps({"verified": True}))
