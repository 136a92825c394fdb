"""The seed's FastAPI ticker, for comparing ssehub against it.

GET /stream sends `count` events (default 10, as in the seed) `interval`
apart (default 3 s), each after its sleep as in the seed, then
`event: close` / `data: bye`. Two changes from the seed, both to make the
comparison fair: each event carries `id: i` as ssehub's ticker does (so
both servers write the same frames), and the seed's per-event print() is
left out (stdout writes would add to FastAPI's CPU time).

`interval` takes seconds ("3", "0.5") or a Go-style duration ("3s",
"500ms", "0s"), so one ssebench command runs against both servers.

Run (Debian: apt-get install python3-fastapi python3-uvicorn):
    python3 -m uvicorn --app-dir bench seed_fastapi:app \
        --host 127.0.0.1 --port 8111 --workers 1 --log-level warning --no-access-log
"""

import asyncio

from fastapi import FastAPI, HTTPException, Query
from fastapi.responses import StreamingResponse

app = FastAPI()


def parse_interval(text: str) -> float:
    """Seconds from "3", "0.5", "3s" or "500ms"."""
    try:
        if text.endswith("ms"):
            return float(text[:-2]) / 1000
        if text.endswith("s"):
            return float(text[:-1])
        return float(text)
    except ValueError:
        raise HTTPException(status_code=400, detail=f"interval {text!r}: want seconds or a duration such as 500ms")


@app.get("/stream")
async def stream(count: int = Query(10, ge=1, le=10000), interval: str = "3"):
    seconds = parse_interval(interval)
    if not 0 <= seconds <= 60:
        raise HTTPException(status_code=400, detail=f"interval {interval!r}: want 0 to 60 seconds")

    async def ticker():
        for i in range(count):
            await asyncio.sleep(seconds)
            yield f"id: {i}\ndata: Streamed line {i}\n\n"
        yield "event: close\ndata: bye\n\n"  # custom event to signal the end

    return StreamingResponse(
        ticker(),
        media_type="text/event-stream",
        headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"},
    )
