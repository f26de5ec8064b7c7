"""Sends the guide's Oracle upload notifications with channel_layer.group_send,
exactly as a Celery task does, through channels_redis.

usage: group_send.py core|pubsub redis://h1,redis://h2 GROUP TRANSACTION_ID [REPEAT [burst]]

Each message is sent as a Celery task does it,
async_to_sync(channel_layer.group_send)(group, event); with "burst" all are
sent from one event loop instead (for throughput measurements).

Prints, one per line, json.dumps(event["message"]) of every event sent: the
bytes a Channels consumer would have sent to the browser.
"""
import datetime
import json
import sys

from asgiref.sync import async_to_sync

layer_type, hosts, group, txn = sys.argv[1], sys.argv[2].split(","), sys.argv[3], int(sys.argv[4])
repeat = int(sys.argv[5]) if len(sys.argv) > 5 else 1
burst = len(sys.argv) > 6 and sys.argv[6] == "burst"

if layer_type == "core":
    from channels_redis.core import RedisChannelLayer
    layer = RedisChannelLayer(hosts=hosts, channel_capacity={"herald!*": 1000000})
else:
    from channels_redis.pubsub import RedisPubSubChannelLayer
    layer = RedisPubSubChannelLayer(hosts=hosts)

STEPS = ["Preparing Data", "Upload to UCM", "Interface Loader", "Journal Import", "AutoPost"]
DETAIL = {
    "Preparing Data": "Preparing journal lines for FBDI",
    "Upload to UCM": "Uploading the FBDI zip to UCM",
    "Interface Loader": "Running Interface Loader to process data",
    "Journal Import": "Importing journals into the GL",
    "AutoPost": "Posting journals — الترحيل التلقائي ✓",
}


def now():
    return datetime.datetime.now().isoformat()


def messages(t):
    yield {"type": "oracle_upload_started", "transaction_id": t,
           "message": f"Oracle upload started for transaction {t}", "timestamp": now()}
    for i, step in enumerate(STEPS, 1):
        yield {"type": "oracle_upload_progress", "transaction_id": t, "step": step,
               "step_number": i, "total_steps": len(STEPS), "message": DETAIL[step],
               "status": "processing", "progress": i / len(STEPS), "timestamp": now()}
    yield {"type": "oracle_upload_completed", "transaction_id": t,
           "message": "Oracle upload completed successfully", "success": True,
           "result_path": "/path/to/result", "timestamp": now()}


async def main():
    out = []
    for r in range(repeat):
        for m in messages(txn + r):
            await layer.group_send(group, {"type": "send_notification", "message": m})
            out.append(json.dumps(m))
    if layer_type == "core":
        await layer.close_pools()
    else:
        await layer.flush()
    return out


if burst:
    lines = async_to_sync(main)()
else:
    lines = []
    for r in range(repeat):
        for m in messages(txn + r):
            async_to_sync(layer.group_send)(group, {"type": "send_notification", "message": m})
            lines.append(json.dumps(m))
print("\n".join(lines))
