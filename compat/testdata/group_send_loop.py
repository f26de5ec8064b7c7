"""Sends one numbered notification with channel_layer.group_send every
INTERVAL_MS milliseconds, through channels_redis, until COUNT are sent or
the process is killed. A send that fails (Redis down) is reported on stderr
and the next one is tried: a Celery worker keeps running too.

usage: group_send_loop.py core|pubsub redis://h1,redis://h2 GROUP INTERVAL_MS COUNT [TAG]

Prints json.dumps(event["message"]) of every send that returned, flushed at
once, so a test sees what was sent and when.
"""
import json
import sys
import time

from asgiref.sync import async_to_sync

layer_type, hosts, group = sys.argv[1], sys.argv[2].split(","), sys.argv[3]
interval, count = int(sys.argv[4]) / 1000, int(sys.argv[5])
tag = sys.argv[6] if len(sys.argv) > 6 else "loop"

if layer_type == "core":
    from channels_redis.core import RedisChannelLayer
    layer = RedisChannelLayer(hosts=hosts, channel_capacity={"herald!*": 100000})
else:
    from channels_redis.pubsub import RedisPubSubChannelLayer
    layer = RedisPubSubChannelLayer(hosts=hosts)

for n in range(1, count + 1):
    m = {"type": "notification", "tag": tag, "n": n}
    try:
        async_to_sync(layer.group_send)(group, {"type": "send_notification", "message": m})
        print(json.dumps(m), flush=True)
    except Exception as e:  # noqa: BLE001 - keep sending, as a worker would
        print(f"send {n}: {e!r}", file=sys.stderr, flush=True)
    time.sleep(interval)
