"""Python baseline of benches/pubsub_to_lake.rs: drain a Pub/Sub subscription (the emulator, via
PUBSUB_EMULATOR_HOST) with google-cloud-pubsub's streaming pull, run the logs chain
(logs_chain.py), write Parquet files per hour partition into a local lake, and ack each message
only after its file is written. Batches close at 10,000 rows, 5 s of age or 250 ms idle, and flow
control holds at most 20,000 messages / 100 MiB, as sluice's shipped config does.

Usage: pubsub_to_lake.py --project P --subscription S --lake DIR --expect N
Prints one JSON object: rows written, wall and CPU seconds, peak RSS."""

import argparse
import json
import os
import resource
import sys
import threading
import time
import uuid

from google.cloud import pubsub_v1

import logs_chain as chain

MAX_AGE, MAX_IDLE = 5.0, 0.25


def main():
    args = argparse.ArgumentParser()
    args.add_argument("--project", required=True)
    args.add_argument("--subscription", required=True)
    args.add_argument("--lake", required=True)
    args.add_argument("--expect", type=int, required=True)
    args.add_argument("--timeout", type=float, default=900)
    a = args.parse_args()

    started = time.perf_counter()
    lock = threading.Lock()
    dedupe = chain.Dedupe()
    batches = {}  # partition -> {"rows": [(record, message)], "opened": t, "last": t}
    state = {"written": 0, "dead": 0}
    done = threading.Event()

    def write(part, rows):
        data = chain.to_parquet(chain.to_table([r for r, _ in rows]))
        d = os.path.join(a.lake, "logs", f"dt={part[:10]}", f"hour={part[11:13]}")
        os.makedirs(d, exist_ok=True)
        path = os.path.join(d, f"python-{uuid.uuid4()}.parquet")
        with open(path + ".tmp", "wb") as f:
            f.write(data)
        os.rename(path + ".tmp", path)  # appears whole or not at all
        for _, m in rows:
            m.ack()
        with lock:
            state["written"] += len(rows)
            if state["written"] + state["dead"] >= a.expect:
                done.set()

    def callback(message):
        try:
            with lock:
                rec = chain.transform(message.data, message.message_id, message.publish_time, dedupe)
        except chain.Refused:
            message.ack()  # a real consumer would write a dead letter first
            with lock:
                state["dead"] += 1
            return
        if rec is None:
            message.ack()
            return
        part = chain.partition(rec)
        full = None
        with lock:
            now = time.monotonic()
            b = batches.setdefault(part, {"rows": [], "opened": now, "last": now})
            b["rows"].append((rec, message))
            b["last"] = now
            if len(b["rows"]) >= chain.MAX_ROWS:
                full = batches.pop(part)["rows"]
        if full:
            write(part, full)

    def flusher():
        while not done.wait(0.05):
            now = time.monotonic()
            with lock:
                due = [p for p, b in batches.items() if now - b["opened"] >= MAX_AGE or now - b["last"] >= MAX_IDLE]
                closed = [(p, batches.pop(p)["rows"]) for p in due]
            for p, rows in closed:
                write(p, rows)

    subscriber = pubsub_v1.SubscriberClient()
    path = subscriber.subscription_path(a.project, a.subscription)
    flow = pubsub_v1.types.FlowControl(max_messages=20_000, max_bytes=100 * 1024 * 1024)
    future = subscriber.subscribe(path, callback=callback, flow_control=flow)
    threading.Thread(target=flusher, daemon=True).start()
    finished = done.wait(a.timeout)
    wall = time.perf_counter() - started
    usage = resource.getrusage(resource.RUSAGE_SELF)
    future.cancel()
    try:
        future.result(timeout=30)
    except Exception:  # cancelled
        pass
    subscriber.close()
    json.dump({
        "finished": finished,
        "written": state["written"],
        "dead": state["dead"],
        "wall_s": wall,
        "cpu_s": usage.ru_utime + usage.ru_stime,
        "peak_rss_mib": usage.ru_maxrss / 1024,
    }, sys.stdout)


if __name__ == "__main__":
    main()
