"""The shipped `logs` pipeline written the way a Python user would: json + re + datetime for
the chain (pipelines/logs.yaml: parse, rename, timestamp, redact, metadata, dedupe, validate
against schemas/log.yaml) and pyarrow for Parquet (zstd level 1 as sluice, statistics, 64Ki-row groups).
Shared by hot_path.py and pubsub_to_lake.py."""

import collections
import datetime as dt
import io
import json
import re
import time

import pyarrow as pa
import pyarrow.parquet as pq

UTC = dt.timezone.utc

# pipelines/logs.yaml `rename` (applied in key order, as sluice does).
RENAME = sorted({"level": "severity", "msg": "message", "ts": "timestamp", "time": "timestamp"}.items())

# src/transform/redact.rs: secret field names and the built-in patterns, in the same order.
SECRET_FIELDS = {f.lower() for f in ["password", "passwd", "secret", "token", "api_key", "apikey",
                                     "authorization", "access_token", "client_secret", "private_key"]}


def _key_value(keys):
    return (r"(?i)(?:" + keys + r""")["']?\s*[:=]\s*(?:"(?P<secret_dq>[^"]*)"|'(?P<secret_sq>[^']*)'|(?P<secret>[^\s"',;&]+))""")


PATTERNS = [re.compile(p) for p in [
    r"(?s)-----BEGIN [A-Z ]*PRIVATE KEY-----(?:.*?-----END [A-Z ]*PRIVATE KEY-----|.*)",
    r"(?i)\bbearer\s+(?P<secret>[A-Za-z0-9\-._~+/]{8,}=*)",
    _key_value("password|passwd|pwd"),
    _key_value(r"api[_-]?key|access[_-]?token|client[_-]?secret|secret[_-]?key"),
    r"\b(?:AKIA|ASIA)[0-9A-Z]{16}\b",
    r"\bAIza[0-9A-Za-z_\-]{35}",
    r"\beyJ[A-Za-z0-9_\-]+\.eyJ[A-Za-z0-9_\-]+\.[A-Za-z0-9_\-]+",
]]
REPLACEMENT = "[REDACTED]"

# schemas/log.yaml
SCHEMA = [
    ("timestamp", "TIMESTAMP", True), ("service", "STRING", True), ("severity", "STRING", True),
    ("message", "STRING", True), ("host", "STRING", False), ("environment", "STRING", False),
    ("logger", "STRING", False), ("trace_id", "STRING", False), ("span_id", "STRING", False),
    ("latency_ms", "FLOAT64", False), ("labels", "JSON", False), ("message_id", "STRING", True),
    ("ingest_time", "TIMESTAMP", False),
]
FIELDS = {name for name, _, _ in SCHEMA}
TS = pa.timestamp("us", tz="+00:00")
ARROW_SCHEMA = pa.schema([
    pa.field(name, {"TIMESTAMP": TS, "STRING": pa.string(), "FLOAT64": pa.float64(), "JSON": pa.string()}[ty],
             nullable=not required)
    for name, ty, required in SCHEMA
])
MAX_ROWS = 10000  # config/sluice.yaml limits.batch.max_rows


class Refused(Exception):
    """The event goes to dead letters, with the stage and reason."""


def fmt_ts(t):
    return t.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def from_epoch(x):
    m = abs(x)
    per = 1e6 if m < 1e11 else 1e3 if m < 1e14 else 1.0 if m < 1e17 else 1e-3
    if isinstance(x, int):
        micros = x * int(per) if per >= 1 else x // 1000
    else:
        micros = round(x * per)
    return dt.datetime(1970, 1, 1, tzinfo=UTC) + dt.timedelta(microseconds=micros)


def parse_rfc3339(s):
    """An RFC 3339 timestamp with its offset, or None."""
    try:
        t = dt.datetime.fromisoformat(s)
    except ValueError:
        return None
    return t if t.tzinfo is not None and "T" in s.upper() else None


def parse_any(v):
    if isinstance(v, bool):
        raise Refused("expected a string or a number")
    if isinstance(v, (int, float)):
        return from_epoch(v)
    if not isinstance(v, str):
        raise Refused("expected a string or a number")
    s = v.strip()
    t = parse_rfc3339(s)
    if t is not None:
        return t
    try:
        t = dt.datetime.fromisoformat(s)
        if t.tzinfo is None:
            return t.replace(tzinfo=UTC)
    except ValueError:
        pass
    for conv in (int, float):
        try:
            return from_epoch(conv(s))
        except (ValueError, OverflowError):
            pass
    raise Refused("not a timestamp")


def mask_fields(v):
    if isinstance(v, dict):
        for k, child in v.items():
            if k.lower() in SECRET_FIELDS and child is not None:
                v[k] = REPLACEMENT
            else:
                mask_fields(child)
    elif isinstance(v, list):
        for c in v:
            mask_fields(c)


def _mask_match(m):
    whole = m.group(0)
    for name in ("secret", "secret_dq", "secret_sq"):
        if name in m.re.groupindex and m.group(name) is not None:
            start, end = m.start(name) - m.start(0), m.end(name) - m.start(0)
            return whole[:start] + REPLACEMENT + whole[end:]
    return REPLACEMENT


def mask_text(s):
    for p in PATTERNS:
        if p.search(s):
            s = p.sub(_mask_match, s)
    return s


def mask_patterns(v):
    if isinstance(v, str):
        return mask_text(v)
    if isinstance(v, dict):
        return {k: mask_patterns(c) for k, c in v.items()}
    if isinstance(v, list):
        return [mask_patterns(c) for c in v]
    return v


class Dedupe:
    """Keys remembered for `window` seconds, at most `max_keys` (oldest forgotten first)."""

    def __init__(self, window=600.0, max_keys=200_000):
        self.window, self.max_keys = window, max_keys
        self.seen, self.order = {}, collections.deque()

    def _expire(self, now):
        while self.order:
            key, at = self.order[0]
            if now - at < self.window and len(self.seen) <= self.max_keys:
                break
            if self.seen.get(key) == at:
                del self.seen[key]
            self.order.popleft()

    def first(self, key):
        now = time.monotonic()
        self._expire(now)
        if key in self.seen:
            return False
        self.seen[key] = now
        self.order.append((key, now))
        self._expire(now)
        return True


def check(rec):
    for name, ty, required in SCHEMA:
        v = rec.get(name)
        if v is None:
            if required:
                raise Refused(f"field '{name}' is required by schema 'log'")
            continue
        ok = {"STRING": lambda: isinstance(v, str),
              "FLOAT64": lambda: isinstance(v, (int, float)) and not isinstance(v, bool),
              "TIMESTAMP": lambda: isinstance(v, str) and parse_rfc3339(v) is not None,
              "JSON": lambda: True}[ty]()
        if not ok:
            raise Refused(f"field '{name}': wrong type")
    for k in rec:
        if k not in FIELDS:
            raise Refused(f"field '{k}' is not in schema 'log'")


def transform(data, message_id, publish_time, dedupe):
    """One payload through the logs chain: the record, or None when dropped as a duplicate."""
    try:
        rec = json.loads(data)
    except ValueError as e:
        raise Refused(f"payload is not valid JSON: {e}")
    if not isinstance(rec, dict):
        raise Refused("payload must be a JSON object")
    for src, dst in RENAME:
        if src in rec:
            rec[dst] = rec.pop(src)
    ts = rec.get("timestamp")
    rec["timestamp"] = fmt_ts(publish_time if ts is None else parse_any(ts))
    mask_fields(rec)
    if "message" in rec:
        rec["message"] = mask_patterns(rec["message"])
    rec["ingest_time"] = fmt_ts(dt.datetime.now(UTC))
    rec["message_id"] = message_id
    if not dedupe.first(message_id):
        return None
    check(rec)
    return rec


def partition(rec):
    """The dt=/hour= partition of a record (its timestamp)."""
    return rec["timestamp"][:13]


def to_table(rows):
    columns = []
    for name, ty, _ in SCHEMA:
        values = [r.get(name) for r in rows]
        if ty == "TIMESTAMP":
            values = [None if v is None else dt.datetime.fromisoformat(v) for v in values]
        elif ty == "JSON":
            values = [None if v is None else json.dumps(v, separators=(",", ":"), sort_keys=True) for v in values]
        columns.append(values)
    return pa.Table.from_arrays([pa.array(c, type=f.type) for c, f in zip(columns, ARROW_SCHEMA)],
                                schema=ARROW_SCHEMA)


def to_parquet(table):
    buf = io.BytesIO()
    pq.write_table(table, buf, compression="zstd", compression_level=1, row_group_size=64 * 1024,
                   write_statistics=True)
    return buf.getvalue()
