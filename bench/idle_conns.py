"""Holds idle keep-alive connections open, for bench/bench.py (scripts/bench.sh).

    python3 bench/idle_conns.py PORT COUNT

Opens COUNT connections to 127.0.0.1:PORT (at most 256 connecting at a time), sends one
`GET /` on each and reads its whole answer (Content-Length or chunked), then keeps them all
open, idle, and prints `ready OPENED ERRORS`. Each `check` line on standard input prints
`open N`: how many the server has not closed. Any other line, or the end of standard input
(the driver went away), closes them all and exits.
"""

import asyncio
import sys

REQUEST = b"GET / HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n"


async def read_answer(reader):
    head = await reader.readuntil(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    status = int(lines[0].split(" ", 2)[1])
    headers = {}
    for line in lines[1:]:
        name, _, value = line.partition(":")
        headers[name.strip().lower()] = value.strip().lower()
    if "chunked" in headers.get("transfer-encoding", ""):
        while True:
            size_line = await reader.readuntil(b"\r\n")
            size = int(size_line.split(b";")[0], 16)
            await reader.readexactly(size + 2)
            if size == 0:
                break
    else:
        await reader.readexactly(int(headers.get("content-length", "0")))
    if status != 200:
        raise RuntimeError(f"status {status}")


async def open_one(port, gate, held):
    async with gate:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        try:
            writer.write(REQUEST)
            await writer.drain()
            await asyncio.wait_for(read_answer(reader), 30)
        except BaseException:
            writer.close()
            raise
        held.append((reader, writer))


async def main():
    port, count = int(sys.argv[1]), int(sys.argv[2])
    gate = asyncio.Semaphore(256)
    held = []
    results = await asyncio.gather(
        *(open_one(port, gate, held) for _ in range(count)), return_exceptions=True
    )
    errors = [r for r in results if isinstance(r, BaseException)]
    if errors:
        print(f"first error: {errors[0]!r}", file=sys.stderr, flush=True)
    print(f"ready {len(held)} {len(errors)}", flush=True)
    loop = asyncio.get_running_loop()
    while True:
        line = await loop.run_in_executor(None, sys.stdin.readline)
        if line.strip() != "check":
            break
        # Let the loop notice closes that already arrived.
        await asyncio.sleep(0.2)
        still_open = sum(1 for r, w in held if not r.at_eof() and not w.is_closing())
        print(f"open {still_open}", flush=True)
    for _, writer in held:
        writer.close()


if __name__ == "__main__":
    asyncio.run(main())
