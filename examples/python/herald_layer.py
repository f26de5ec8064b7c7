"""A Django Channels layer whose group_send publishes to Herald.

Unchanged code such as

    async_to_sync(get_channel_layer().group_send)(
        f"user_{user.id}", {"type": "send_notification", "message": {...}})

then reaches the user's Herald connections. settings.py:

    CHANNEL_LAYERS = {"default": {
        "BACKEND": "herald_layer.HeraldChannelLayer",
        "CONFIG": {"url": "http://herald:8000", "api_key": "...",
                   "groups": {"broadcast": "broadcast"}},  # other groups
    }}

Only group_send is supported: Herald, not Django, holds the connections.
"""
import asyncio
import re

import herald

_USER_GROUP = re.compile(r"^user_(?P<id>[A-Za-z0-9_\-.]+)$")


class HeraldChannelLayer:
    extensions = ["groups"]

    def __init__(self, url=None, api_key=None, groups=None, message_key="message", timeout=5.0, **_):
        self.opts = {"url": url, "api_key": api_key, "timeout": timeout}
        self.groups, self.message_key = groups or {}, message_key

    def _target(self, group):
        m = _USER_GROUP.match(group)
        if m:
            return {"user_id": m["id"]}
        if group in self.groups:
            return {"channel": self.groups[group]}
        return None

    async def group_send(self, group, message):
        target = self._target(group)
        if target is None:
            return  # no Herald channel for this group: nobody listens
        data = message.get(self.message_key) if self.message_key else message
        body = dict(target, data=data)
        await asyncio.get_running_loop().run_in_executor(None, lambda: herald._post(body, **self.opts))

    async def _unsupported(self, *args, **kwargs):
        raise NotImplementedError("connections live in Herald, not in Django")

    group_add = group_discard = send = receive = new_channel = flush = _unsupported
