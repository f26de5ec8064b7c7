"""Sends one event with channel_layer.group_send through channels_redis, as
a Celery task does: {"type": "send_notification", "message": MESSAGE}.

usage: group_send_one.py core|pubsub redis://h1,redis://h2 GROUP MESSAGE_JSON

Prints json.dumps(message): the bytes a Channels consumer sent the browser.
"""
import json
import sys

from asgiref.sync import async_to_sync

layer_type, hosts, group, message = sys.argv[1], sys.argv[2].split(","), sys.argv[3], json.loads(sys.argv[4])

if layer_type == "core":
    from channels_redis.core import RedisChannelLayer
    layer = RedisChannelLayer(hosts=hosts)
else:
    from channels_redis.pubsub import RedisPubSubChannelLayer
    layer = RedisPubSubChannelLayer(hosts=hosts)

async_to_sync(layer.group_send)(group, {"type": "send_notification", "message": message})
print(json.dumps(message))
