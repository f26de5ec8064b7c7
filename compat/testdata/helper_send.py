"""Sends the guide's sequence through examples/python: first with
herald.publish (plain function), then with HeraldChannelLayer.group_send
called the Celery way. Prints json.dumps of each message.

usage: helper_send.py HERALD_URL API_KEY USER_ID
"""
import json
import os
import sys

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "..", "examples", "python"))
sys.path.insert(0, os.path.dirname(__file__))

import herald  # noqa: E402
from herald_layer import HeraldChannelLayer  # noqa: E402
from asgiref.sync import async_to_sync  # noqa: E402

url, key, user = sys.argv[1], sys.argv[2], sys.argv[3]
os.environ["HERALD_URL"], os.environ["HERALD_API_KEY"] = url, key

STEPS = ["Preparing Data", "Upload to UCM", "Interface Loader", "Journal Import", "AutoPost"]


def messages(t):
    yield {"type": "oracle_upload_started", "transaction_id": t, "message": f"Oracle upload started for transaction {t}"}
    for i, step in enumerate(STEPS, 1):
        yield {"type": "oracle_upload_progress", "transaction_id": t, "step": step, "step_number": i,
               "total_steps": 5, "message": f"{step} — ✓", "status": "processing"}
    yield {"type": "oracle_upload_completed", "transaction_id": t, "message": "done", "success": True}


out = []
for m in messages(602):
    reply = herald.publish(int(user), m)
    assert reply["channel"] == f"user:{user}", reply
    out.append(json.dumps(m))

layer = HeraldChannelLayer(url=url, api_key=key)
for m in messages(603):
    async_to_sync(layer.group_send)(f"user_{user}", {"type": "send_notification", "message": m})
    out.append(json.dumps(m))

try:
    herald.publish(1, {"x": 1}, api_key="wrong-key-0123456789")
    raise SystemExit("a wrong key was accepted")
except herald.HeraldError as e:
    assert e.status == 401, e

print("\n".join(out))
