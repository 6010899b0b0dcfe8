"""The ceiling: N chat-completion requests at concurrency C with a bare aiohttp loop, nothing else.

    python bench/bare_client.py URL N C
"""

import asyncio
import json
import sys

import aiohttp


async def run(url: str, n: int, concurrency: int) -> None:
    body = json.dumps({"model": "m", "messages": [{"role": "user", "content": 'Write "S3" ' * 40}]})
    remaining = iter(range(n))
    connector = aiohttp.TCPConnector(limit=concurrency)
    async with aiohttp.ClientSession(connector=connector) as session:

        async def worker() -> None:
            for _ in remaining:
                async with session.post(url + "/chat/completions", data=body,
                                        headers={"content-type": "application/json"}) as response:
                    await response.read()

        await asyncio.gather(*(worker() for _ in range(concurrency)))


if __name__ == "__main__":
    asyncio.run(run(sys.argv[1], int(sys.argv[2]), int(sys.argv[3])))
