"""Python baseline of the hot path (see benches/hot_path.rs): the same serialized streaming-pull
responses, decoded with google-cloud-pubsub's protobuf types into its `Message` objects, through
the logs chain (logs_chain.py), batched per hour, to Arrow and Parquet (zstd) in memory.

Usage: hot_path.py FRAMES [--compare SLUICE_FIRST.parquet]
Prints one JSON object: events written, CPU and wall seconds, per-phase CPU seconds, and whether
its first Parquet file holds the same rows as sluice's (every column but ingest_time)."""

import argparse
import json
import queue
import struct
import sys
import time

import pyarrow.parquet as pq
from google.cloud.pubsub_v1.subscriber.message import Message
from google.pubsub_v1.types import StreamingPullResponse

import logs_chain as chain

PHASES = ["decode", "transform chain", "batch + row check", "arrow columns", "parquet (zstd)"]


def read_frames(path):
    with open(path, "rb") as f:
        data = f.read()
    frames, i = [], 0
    while i < len(data):
        (n,) = struct.unpack_from("<I", data, i)
        frames.append(data[i + 4:i + 4 + n])
        i += 4 + n
    return frames


def compare(ours, sluice_path):
    theirs = pq.read_table(sluice_path)
    if theirs.num_rows != ours.num_rows:
        return f"DIFFERENT row counts: sluice {theirs.num_rows}, python {ours.num_rows}"
    names = [n for n in ours.column_names if n != "ingest_time"]
    bad = [n for n in names if theirs.column(n).to_pylist() != ours.column(n).to_pylist()]
    if bad:
        return "DIFFERENT in " + ", ".join(bad)
    return f"identical ({ours.num_rows} rows x {len(names)} columns)"


def main():
    args = argparse.ArgumentParser()
    args.add_argument("frames")
    args.add_argument("--compare")
    a = args.parse_args()
    frames = read_frames(a.frames)
    pb = StreamingPullResponse.pb()
    requests = queue.SimpleQueue()  # where Message.ack() puts its request, as in the client
    dedupe = chain.Dedupe()
    cpu = {p: 0.0 for p in PHASES}
    open_batches, first, written = {}, None, 0
    wall0 = time.perf_counter()
    t = time.process_time()

    def lap(phase):
        nonlocal t
        now = time.process_time()
        cpu[phase] += now - t
        t = now

    def write(batch):
        nonlocal first, written
        table = chain.to_table([rec for rec, _ in batch])
        lap("arrow columns")
        chain.to_parquet(table)
        for _, msg in batch:
            msg.ack()
        written += len(batch)
        lap("parquet (zstd)")
        if first is None:
            first = table

    for frame in frames:
        response = pb.FromString(frame)
        messages = [Message(rm.message, rm.ack_id, rm.delivery_attempt, requests) for rm in response.received_messages]
        lap("decode")
        kept = []
        for m in messages:
            rec = chain.transform(m.data, m.message_id, m.publish_time, dedupe)
            if rec is not None:
                kept.append((rec, m))
        lap("transform chain")
        full = []
        for rec, m in kept:
            batch = open_batches.setdefault(chain.partition(rec), [])
            batch.append((rec, m))
            if len(batch) >= chain.MAX_ROWS:
                full.append(open_batches.pop(chain.partition(rec)))
        lap("batch + row check")
        for b in full:
            write(b)
    for b in list(open_batches.values()):
        write(b)
    wall = time.perf_counter() - wall0
    out = {
        "written": written,
        "cpu_s": sum(cpu.values()),
        "wall_s": wall,
        "phases": {p: {"cpu_s": s} for p, s in cpu.items()},
    }
    if a.compare:
        out["compare"] = compare(first, a.compare)
    json.dump(out, sys.stdout)


if __name__ == "__main__":
    main()
