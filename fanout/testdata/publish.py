#!/usr/bin/env python3
"""Publish to a Herald channel through Redis (independent shards) using only
the standard library. usage: publish.py ADDR[,ADDR...] PREFIX CHANNEL JSON [IDEMPOTENCY_KEY]
Prints "epoch offset duplicate". ADDRs are Herald's fanout.redis.shards, in order."""
import hashlib, os, socket, sys, time

# The publish script is fanout/redis_prelude.lua followed by fanout/redis_publish.lua
# (fanout.RedisPublishScript()); HERALD_PUBLISH_LUA names a file holding both instead.
HERE = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..")
LUA = os.environ.get("HERALD_PUBLISH_LUA")
SCRIPT = open(LUA, "rb").read() if LUA else b"".join(open(os.path.join(HERE, n), "rb").read() for n in ("redis_prelude.lua", "redis_publish.lua"))
M64 = 0xFFFFFFFFFFFFFFFF

def shard_index(channel, shards):
    h = 0xCBF29CE484222325  # FNV-1a 64 of the channel name...
    for c in channel.encode():
        h = ((h ^ c) * 0x100000001B3) & M64
    b, j = -1, 0  # ...then jump consistent hash (Lamping & Veach)
    while j < shards:
        b, h = j, (h * 2862933555777941757 + 1) & M64
        j = int((b + 1) * (float(1 << 31) / float((h >> 33) + 1)))
    return max(b, 0)

def call(sock, f, *args):
    out = b"*%d\r\n" % len(args)
    for a in args:
        a = a if isinstance(a, bytes) else str(a).encode()
        out += b"$%d\r\n%s\r\n" % (len(a), a)
    sock.sendall(out)
    return reply(f)

def reply(f):
    line = f.readline()[:-2]
    kind, rest = line[:1], line[1:]
    if kind == b"-":
        raise RuntimeError(rest.decode())
    if kind == b":":
        return int(rest)
    if kind == b"$":
        return None if rest == b"-1" else f.read(int(rest) + 2)[:-2]
    return [reply(f) for _ in range(int(rest))] if kind == b"*" else rest

def publish(addrs, prefix, channel, data, key=None, size=100, ttl_ms=600000, meta_ttl_ms=604800000, idem_ms=300000):
    host, port = addrs[shard_index(channel, len(addrs))].rsplit(":", 1)
    keys = [prefix + "meta:" + channel, prefix + "hist:" + channel] + ([prefix + "idem:" + channel + "|" + key] if key else [])
    args = [prefix + "chan:" + channel, data, "", time.time_ns(), size, ttl_ms, meta_ttl_ms, idem_ms, 0]
    with socket.create_connection((host, int(port)), timeout=5) as s:
        f = s.makefile("rb")  # add call(s, f, "AUTH", user, password) if needed
        try:
            r = call(s, f, "EVALSHA", hashlib.sha1(SCRIPT).hexdigest(), len(keys), *keys, *args)
        except RuntimeError as e:
            if not str(e).startswith("NOSCRIPT"):
                raise
            r = call(s, f, "EVAL", SCRIPT, len(keys), *keys, *args)
        return r[:3]  # epoch, offset, duplicate (the 4th value is for Herald nodes)

if __name__ == "__main__":
    print(*publish(sys.argv[1].split(","), *sys.argv[2:6]))
