"""A TCP proxy that delays what a host sends by 200 ms ± 50 ms, keeping order.

Our kernels have no netem qdisc, so a slow link is a proxy inside the slow host between
it and the servers it talks to: `python -m tests.multihost.delay_proxy LISTEN=TARGET ...`
with LISTEN and TARGET as host:port.
"""
from __future__ import annotations

import asyncio
import random
import sys

DELAY, JITTER = 0.200, 0.050


async def _pump(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, delay: bool) -> None:
    """Copy with a delay, in order: a chunk never overtakes the one before it."""
    queue: asyncio.Queue[tuple[float, bytes]] = asyncio.Queue()
    loop = asyncio.get_running_loop()

    async def send() -> None:
        while True:
            due, data = await queue.get()
            wait = due - loop.time()
            if wait > 0:
                await asyncio.sleep(wait)  # the delay being simulated, not a synchronisation
            if not data:
                writer.write_eof() if writer.can_write_eof() else writer.close()
                return
            writer.write(data)
            await writer.drain()

    sender = asyncio.create_task(send())
    last_due = 0.0
    try:
        while True:
            data = await reader.read(65536)
            lag = random.uniform(DELAY - JITTER, DELAY + JITTER) if delay else 0.0
            due = max(loop.time() + lag, last_due)
            last_due = due
            queue.put_nowait((due, data))
            if not data:
                break
        await sender
    except (ConnectionError, OSError):
        pass  # one side went away: the other is closed below
    finally:
        sender.cancel()
        writer.close()


async def _serve(listen: str, target: str) -> asyncio.Server:
    lhost, lport = listen.rsplit(":", 1)
    thost, tport = target.rsplit(":", 1)

    async def handle(client_r, client_w) -> None:
        try:
            server_r, server_w = await asyncio.open_connection(thost, int(tport))
        except OSError:
            client_w.close()
            return
        # Like a delay on the host's own link: what it sends is late, answers are not.
        await asyncio.gather(_pump(client_r, server_w, True), _pump(server_r, client_w, False))

    return await asyncio.start_server(handle, lhost, int(lport))


async def main(pairs: list[str]) -> None:
    servers = [await _serve(*pair.split("=", 1)) for pair in pairs]
    print("delay proxy ready", flush=True)
    await asyncio.gather(*(s.serve_forever() for s in servers))


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1:]))
