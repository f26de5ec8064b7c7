"""Reference decoder for FuzzDecodeMsgpack: what channels_redis does.

Reads inputs from stdin, each a 4-byte big-endian length then the bytes,
and answers each with one line: "OK <json>" with the text of
json.dumps(msgpack.unpackb(b, raw=False)) (NaN and infinities refused, as
Herald refuses them), or "ERR <exception type>".
"""
import json
import struct
import sys

import msgpack

inp, out = sys.stdin.buffer, sys.stdout
while True:
    head = inp.read(4)
    if len(head) < 4:
        break
    (n,) = struct.unpack(">I", head)
    data = inp.read(n)
    try:
        text = json.dumps(msgpack.unpackb(data, raw=False), allow_nan=False)
        out.write("OK " + text + "\n")
    except Exception as e:  # any refusal: compared as "refused"
        out.write("ERR " + type(e).__name__ + "\n")
    out.flush()
