r"""The anchors of the logs hot-path benchmark (issue 18, "Targets: Anchors"): the strongest
alternatives a user would reach for, DuckDB and polars, each on one thread, doing the work of the
shipped `logs` pipeline (pipelines/logs.yaml, schemas/log.yaml) on the same NDJSON payloads:

- read the payloads with explicit columns: the schema's fields and the producer spellings
  level, msg, ts, time;
- rename level -> severity, msg -> message, ts/time -> timestamp (in sluice's key order);
- parse `timestamp` (RFC 3339 text) to a UTC microsecond TIMESTAMP, the publish time when absent;
- mask the seven built-in redaction patterns of src/transform/redact/ in `message`, only the secret
  span of each match replaced by "[REDACTED]", as sluice does;
- add `message_id` (the line's index + 1, as text: the ids the Rust bench gives the payloads) and
  `ingest_time` (now); keep the first row per message_id;
- write Parquet, zstd level 1.

What they leave out, so they are the stronger for it: validation and dead letters row by row (a
bad payload fails the whole query), timestamps as epoch numbers or without an offset, and the row
order (DuckDB's keep-first leaves it to the hash partitioning; polars keeps it). DuckDB's RE2 takes
`\s` and `\b` as ASCII, so next to non-ASCII white space or letters it masks otherwise than sluice;
polars uses Rust's regex, as sluice does.

Usage: anchors.py PAYLOADS.ndjson --out DIR --publish-time 2026-11-26T09:30:00Z
                  [--compare SLUICE_FIRST.parquet]
Prints one JSON object: CPU and wall seconds of each anchor (reading, transforming and writing;
not Python's start-up), rows written, versions, and with --compare whether each anchor's rows equal
those of sluice's first Parquet file (every column but ingest_time, matched by message_id; the
JSON column `labels` as the values it holds, as polars writes it with spaces)."""

import argparse
import datetime as dt
import json
import os
import platform
import re
import sys
import time

os.environ["POLARS_MAX_THREADS"] = "1"  # read by polars when it is imported

import duckdb  # noqa: E402
import polars as pl  # noqa: E402
import pyarrow as pa  # noqa: E402
import pyarrow.compute as pc  # noqa: E402
import pyarrow.parquet as pq  # noqa: E402

from logs_chain import REPLACEMENT, SCHEMA  # noqa: E402

# pipelines/logs.yaml `rename`: the later source wins (sluice applies them in key order).
RENAMED = {"severity": ["level"], "message": ["msg"], "timestamp": ["ts", "time"]}
ADDED = {"message_id", "ingest_time"}
TYPES = {name: ty for name, ty, _ in SCHEMA}
INPUT = [(name, ty) for name, ty, _ in SCHEMA if name not in ADDED]
INPUT += [(src, "STRING") for dst, srcs in RENAMED.items() for src in srcs]
INPUT = [(name, "STRING" if ty == "TIMESTAMP" else ty) for name, ty in INPUT]  # parsed after rename


def _key_value(keys):
    """src/transform/redact `key_value!`: groups 1 (key and sign) and 2 or 3 (the opening
    quote) are kept, so `key=[REDACTED]`, `key: "[REDACTED]"`."""
    return r"""(?i)((?:""" + keys + r""")["']?\s*[:=]\s*)(?:(")[^"]*"|(')[^']*'|[^\s"',;&]+)"""


# BUILT_IN of src/transform/redact/mod.rs, in its order, for RE2 (DuckDB) and Rust's regex
# (polars): (regex, replacement with $N for the kept groups). Only the secret is outside groups.
PATTERNS = [
    (r"(?s)-----BEGIN [A-Z ]*PRIVATE KEY-----(?:.*?-----END [A-Z ]*PRIVATE KEY-----|.*)", REPLACEMENT),
    (r"(?i)(\bbearer\s+)[A-Za-z0-9\-._~+/]{8,}=*", "$1" + REPLACEMENT),
    (_key_value("password|passwd|pwd"), "$1$2$3" + REPLACEMENT + "$2$3"),
    (_key_value(r"api[_-]?key|access[_-]?token|client[_-]?secret|secret[_-]?key"), "$1$2$3" + REPLACEMENT + "$2$3"),
    (r"\b(?:AKIA|ASIA)[0-9A-Z]{16}\b", REPLACEMENT),
    (r"\bAIza[0-9A-Za-z_\-]{35}", REPLACEMENT),
    (r"\beyJ[A-Za-z0-9_\-]+\.eyJ[A-Za-z0-9_\-]+\.[A-Za-z0-9_\-]+", REPLACEMENT),
]

DUCK_TYPES = {"STRING": "VARCHAR", "FLOAT64": "DOUBLE", "JSON": "JSON"}
POLARS_TYPES = {"STRING": pl.String, "FLOAT64": pl.Float64, "JSON": pl.String}


def sql_text(s):
    return "'" + s.replace("'", "''") + "'"


def duckdb_redact(text):
    """SQL for `text` with the built-in patterns masked, one after the other as sluice does."""
    for regex, replacement in PATTERNS:
        rewrite = re.sub(r"\$(\d)", r"\\\1", replacement)
        text = f"regexp_replace({text}, {sql_text(regex)}, {sql_text(rewrite)}, 'g')"
    return text


def polars_redact(text):
    """`text` (an expression) with the built-in patterns masked, one after the other."""
    for regex, replacement in PATTERNS:
        text = text.str.replace_all(regex, re.sub(r"\$(\d)", r"${\1}", replacement))
    return text


def duckdb_query(payloads, out, publish):
    """The logs work as one DuckDB statement."""
    columns = ", ".join(f"{sql_text(n)}: {sql_text(DUCK_TYPES[t])}" for n, t in INPUT)
    select = []
    for name, ty, _ in SCHEMA:
        if name == "timestamp":
            expr = f"coalesce(coalesce(ts, \"time\", \"timestamp\")::TIMESTAMPTZ, {sql_text(publish)}::TIMESTAMPTZ)"
        elif name == "severity":
            expr = "coalesce(level, severity)"
        elif name == "message":
            expr = duckdb_redact("coalesce(msg, message)")
        elif name == "message_id":
            expr = "line::VARCHAR"
        elif name == "ingest_time":
            expr = "now()"
        else:
            expr = f"{name}::VARCHAR" if ty == "JSON" else f'"{name}"'
        select.append(f'{expr} AS "{name}"')
    return f"""COPY (
        SELECT {", ".join(select)}
        FROM (SELECT *, row_number() OVER () AS line
              FROM read_ndjson({sql_text(payloads)}, columns = {{{columns}}}))
        QUALIFY row_number() OVER (PARTITION BY message_id ORDER BY line) = 1
    ) TO {sql_text(out)} (FORMAT parquet, COMPRESSION zstd, COMPRESSION_LEVEL 1)"""


def run_duckdb(payloads, out, publish):
    con = duckdb.connect()
    con.execute("SET threads = 1")
    con.execute(duckdb_query(payloads, out, publish.isoformat()))
    con.close()


def run_polars(payloads, out, publish):
    schema = {n: POLARS_TYPES[t] for n, t in INPUT}
    ts = pl.coalesce("ts", "time", "timestamp").str.to_datetime("%+", time_unit="us", time_zone="UTC")
    exprs = {
        "timestamp": ts.fill_null(pl.lit(publish).dt.cast_time_unit("us")),
        "severity": pl.coalesce("level", "severity"),
        "message": polars_redact(pl.coalesce("msg", "message")),
        "message_id": pl.col("line").cast(pl.String),
        "ingest_time": pl.lit(dt.datetime.now(dt.timezone.utc)).dt.cast_time_unit("us"),
    }
    frame = (
        pl.scan_ndjson(payloads, schema=schema)
        .with_row_index("line", offset=1)
        .select([exprs.get(name, pl.col(name)).alias(name) for name, _, _ in SCHEMA])
        .unique(subset="message_id", keep="first", maintain_order=True)
        .collect()
    )
    frame.write_parquet(out, compression="zstd", compression_level=1)


def timed(run, payloads, out, publish):
    wall, cpu = time.perf_counter(), time.process_time()
    run(payloads, out, publish)
    cpu, wall = time.process_time() - cpu, time.perf_counter() - wall
    return {"cpu_s": cpu, "wall_s": wall, "rows": pq.ParquetFile(out).metadata.num_rows}


def comparable(column, name):
    """Values to compare: timestamps as UTC microseconds, JSON text as the values it holds."""
    if pa.types.is_timestamp(column.type):
        return pc.cast(pc.cast(column, pa.timestamp("us", tz="UTC")), pa.int64()).to_pylist()
    if TYPES[name] == "JSON":
        return [None if v is None else json.loads(v) for v in pc.cast(column, pa.string()).to_pylist()]
    return column.to_pylist()


def compare(anchor_path, sluice_path):
    """Whether the anchor's rows with the message ids of sluice's file equal sluice's rows."""
    theirs = pq.read_table(sluice_path)
    names = [n for n in theirs.column_names if n != "ingest_time"]
    ours = pq.read_table(anchor_path, columns=names)
    ours = ours.filter(pc.is_in(ours["message_id"], value_set=theirs["message_id"]))
    if ours.num_rows != theirs.num_rows:
        return f"DIFFERENT row counts: sluice {theirs.num_rows}, anchor {ours.num_rows} with those ids"
    ours, theirs = ours.sort_by("message_id"), theirs.select(names).sort_by("message_id")
    bad = [n for n in names if comparable(ours[n], n) != comparable(theirs[n], n)]
    if bad:
        return "DIFFERENT in " + ", ".join(bad)
    json_columns = [n for n in names if TYPES[n] == "JSON"]
    return f"identical ({ours.num_rows} rows x {len(names)} columns; {', '.join(json_columns)} as JSON values)"


def main():
    args = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    args.add_argument("payloads")
    args.add_argument("--out", required=True, help="directory for the anchors' Parquet files")
    args.add_argument("--publish-time", required=True, help="RFC 3339; the timestamp of rows without one")
    args.add_argument("--compare", help="sluice's first Parquet file of the same payloads")
    a = args.parse_args()
    os.makedirs(a.out, exist_ok=True)
    publish = dt.datetime.fromisoformat(a.publish_time.replace("Z", "+00:00"))
    if publish.tzinfo is None:
        args.error("--publish-time needs an offset (RFC 3339), e.g. 2026-11-26T09:30:00Z")
    publish = publish.astimezone(dt.timezone.utc)
    report, compared = {}, {}
    for name, run in [("duckdb", run_duckdb), ("polars", run_polars)]:
        out = os.path.join(a.out, f"anchor-{name}.parquet")
        report[name] = timed(run, a.payloads, out, publish)
        if a.compare:
            compared[name] = compare(out, a.compare)
    if a.compare:
        report["compare"] = compared
    report["versions"] = {"duckdb": duckdb.__version__, "polars": pl.__version__,
                          "pyarrow": pa.__version__, "python": platform.python_version()}
    json.dump(report, sys.stdout)
    print()


if __name__ == "__main__":
    main()
