"""The floor of the API bench: FastAPI on uvicorn (one worker) answering fixed bytes.

    python bench/floor_app.py PORT BODY_FILE

Serves the content of BODY_FILE (a real `/api/v1/data` page 1, saved by `bench/api.py`) at
`GET /api/v1/data`, from memory, with nothing else: the same framework, server, event loop
and HTTP parser as `cryptoetl serve`, minus everything cryptoetl does. What the stack itself
can do on this machine.
"""

from __future__ import annotations

import sys
from pathlib import Path

import uvicorn
from fastapi import FastAPI
from starlette.responses import Response


def build(body: bytes) -> FastAPI:
    app = FastAPI()

    @app.get("/api/v1/data")
    async def data() -> Response:
        return Response(body, media_type="application/json")

    return app


def main() -> None:
    port, body_file = int(sys.argv[1]), Path(sys.argv[2])
    uvicorn.run(
        build(body_file.read_bytes()),
        host="127.0.0.1",
        port=port,
        log_level="warning",
        access_log=False,
        server_header=False,
    )


if __name__ == "__main__":
    main()
