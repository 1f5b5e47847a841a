"""The PostgreSQL sink (``postgresql://user:password@host:port/db[?table=name]``), through psycopg 3.

One table per spider (or the ``table`` option / ``?table=`` query parameter), created if missing::

    key text PRIMARY KEY, data jsonb NOT NULL, stored_at timestamptz, updated_at timestamptz

Every batch is one transaction of upserts on ``key``: the item's content key (with an ``item_key``)
or the store's id of the item (``<store>:<seq>``, without one). A batch written again after a crash
changes nothing (``ON CONFLICT DO UPDATE ... WHERE data IS DISTINCT``), and with ``item_dedup=update``
an item whose content changed becomes an UPDATE of its row. Install with ``pip install kubecrawl[postgres]``.
"""

from __future__ import annotations

import logging
from typing import Any
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

import orjson

from ..errors import ConfigurationError, StorageError
from .sink import FeedItem, Sink
from .spec import FeedSpec, redact

log = logging.getLogger(__name__)


def _psycopg() -> Any:
    try:
        import psycopg
    except ImportError:
        raise ConfigurationError("postgresql:// feeds need psycopg 3: pip install 'kubecrawl[postgres]'") from None
    return psycopg


def _strip_nul(obj: Any) -> tuple[Any, int]:
    """jsonb cannot hold U+0000: replaced by U+FFFD (counted)."""
    if isinstance(obj, str):
        return obj.replace("\x00", "\ufffd"), obj.count("\x00")
    if isinstance(obj, list):
        pairs = [_strip_nul(v) for v in obj]
        return [p[0] for p in pairs], sum(p[1] for p in pairs)
    if isinstance(obj, dict):
        out: dict[str, Any] = {}
        n = 0
        for k, v in obj.items():
            k2, nk = _strip_nul(k)
            v2, nv = _strip_nul(v)
            out[k2] = v2
            n += nk + nv
        return out, n
    return obj, 0


class PostgresSink(Sink):
    """Upserts into one table; the checkpoint is unused (writes are idempotent by key)."""

    def __init__(self, spec: FeedSpec, uri: str, *, table: str, item_dedup: str) -> None:
        super().__init__(spec, uri)
        parts = urlsplit(uri)
        query = dict(parse_qsl(parts.query))
        self.table = spec.table or query.pop("table", None) or table
        self.dsn = urlunsplit(parts._replace(query=urlencode(query)))
        self.item_dedup = item_dedup
        self._conn: Any = None
        self.inserted_or_updated = 0
        self.nul_replaced = 0
        _psycopg()  # a missing driver is a configuration error at start-up

    @property
    def key(self) -> str:
        return f"{redact(self.dsn)}#{self.table}"

    def _connect(self) -> Any:
        if self._conn is not None and not self._conn.closed:
            return self._conn
        psycopg = _psycopg()
        from psycopg import sql

        try:
            conn = psycopg.connect(self.dsn, connect_timeout=5, application_name="kubecrawl")
            with conn.transaction():
                conn.execute(
                    sql.SQL(
                        "CREATE TABLE IF NOT EXISTS {} (key text PRIMARY KEY, data jsonb NOT NULL,"
                        " stored_at timestamptz NOT NULL DEFAULT now(), updated_at timestamptz NOT NULL DEFAULT now())"
                    ).format(sql.Identifier(self.table))
                )
        except psycopg.Error as exc:
            raise StorageError(f"PostgreSQL feed {redact(self.dsn)}: {exc}".strip()) from None
        self._conn = conn
        self._upsert = sql.SQL(
            "INSERT INTO {t} AS t (key, data) VALUES (%s, %s::jsonb) ON CONFLICT (key) DO UPDATE"
            " SET data = EXCLUDED.data, updated_at = now() WHERE t.data IS DISTINCT FROM EXCLUDED.data"
        ).format(t=sql.Identifier(self.table))
        return conn

    def open(self, checkpoint: str | None) -> str:
        """Connects lazily: a database that is down at start delays delivery, it does not stop the crawl."""
        return ""

    def _row(self, item: FeedItem) -> tuple[str, str]:
        key = item.key.hex() if len(item.key) == 20 else item.key.decode("ascii", "backslashreplace")
        data = item.data
        if b"\\u0000" in data:
            obj, n = _strip_nul(orjson.loads(data))
            self.nul_replaced += n
            data = orjson.dumps(obj)
        return key, data.decode("utf-8")

    def write(self, batch: list[FeedItem]) -> str:
        if not batch:
            return ""
        psycopg = _psycopg()
        conn = self._connect()
        rows = [self._row(it) for it in batch]
        try:
            with conn.transaction(), conn.cursor() as cur:
                cur.executemany(self._upsert, rows)
                self.inserted_or_updated += max(cur.rowcount, 0)
        except psycopg.Error as exc:
            try:
                conn.close()
            finally:
                self._conn = None
            raise StorageError(f"PostgreSQL feed {redact(self.dsn)}: {exc}".strip()) from None
        self.written += len(batch)
        return ""

    def close(self) -> None:
        if self._conn is not None:
            self._conn.close()
            self._conn = None
        if self.nul_replaced:
            log.warning(
                "feed %s: %d U+0000 character(s) written as U+FFFD (jsonb cannot hold them)",
                self.key,
                self.nul_replaced,
            )
