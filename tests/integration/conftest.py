"""Integration fixtures: a real ``redis-server`` on a free port (optionally with AOF, restartable).

The server and its fixtures live in ``tests/helpers/redis_server.py`` (shared with tests/contract); the
HTTP side (a threaded stdlib server with a request log, and ``generated_site``) in
``tests/helpers/httpserver.py`` and the ``http_server`` fixture of ``tests/conftest.py``.
"""

from __future__ import annotations

from tests.helpers.redis_server import (
    RedisServer,
    free_port,
    make_redis_server,
    redis_server,
    redis_server_binary,
)

__all__ = ["RedisServer", "free_port", "make_redis_server", "redis_server", "redis_server_binary"]
