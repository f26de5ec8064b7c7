"""Publish to Herald from Python with the standard library only.

    import herald
    herald.publish(42, {"type": "oracle_upload_started", "transaction_id": 602})
    herald.publish_channel("broadcast", {"type": "maintenance", "at": "22:00"})

Configuration comes from arguments or the environment: HERALD_URL (default
http://127.0.0.1:8000) and HERALD_API_KEY. The message is sent as JSON with
json.dumps defaults, so browsers receive exactly the bytes a Django Channels
consumer's json.dumps(event["message"]) produced.
"""
import json
import os
import urllib.error
import urllib.request

__all__ = ["publish", "publish_channel", "HeraldError"]


class HeraldError(Exception):
    """Herald refused the publish or could not be reached."""

    def __init__(self, status, body):
        super().__init__(f"herald publish failed: {status} {body}")
        self.status, self.body = status, body


def _post(body, url=None, api_key=None, timeout=5.0):
    url = (url or os.environ.get("HERALD_URL", "http://127.0.0.1:8000")).rstrip("/")
    key = api_key or os.environ.get("HERALD_API_KEY", "")
    req = urllib.request.Request(
        url + "/api/publish",
        data=json.dumps(body).encode(),
        headers={"Content-Type": "application/json", "X-API-Key": key},
        method="POST",
    )
    try:
        with urllib.request.urlopen(req, timeout=timeout) as resp:
            return json.load(resp)
    except urllib.error.HTTPError as e:
        raise HeraldError(e.code, e.read().decode(errors="replace")) from None
    except (urllib.error.URLError, OSError) as e:
        raise HeraldError(0, str(e)) from None


def publish(user_id, message, idempotency_key=None, **kw):
    """Send message (any JSON value) to every connection of user_id.

    Returns Herald's reply: {"channel": "user:42", "cursor": ..., "offset": ...}.
    """
    body = {"user_id": user_id, "data": message}
    if idempotency_key:
        body["idempotency_key"] = idempotency_key
    return _post(body, **kw)


def publish_channel(channel, message, idempotency_key=None, **kw):
    """Send message to a channel, e.g. "broadcast"."""
    body = {"channel": channel, "data": message}
    if idempotency_key:
        body["idempotency_key"] = idempotency_key
    return _post(body, **kw)
