"""A worker stand-in for crash tests: opens N calls, records turns, then waits to be killed.

    python testkit/crash_call.py CALLS MESSAGES

The store and journal directory come from the environment exactly as in the worker.
Prints `READY <conversation ids>` once every turn has been added.
"""

from __future__ import annotations

import asyncio
import sys

from conversation_manager import ConversationManager
from settings import Settings
from storage.factory import open_record_store


async def main(calls: int, messages: int) -> None:
    settings = Settings.from_env()
    store = await open_record_store(settings)
    managers = [ConversationManager.from_settings(store, settings) for _ in range(calls)]
    ids = [await m.start_conversation(None, f"crash-room-{i}", f"caller-{i}") for i, m in enumerate(managers)]
    for n in range(messages):
        for m in managers:
            m.add_message_to_local_transcript("user" if n % 2 else "assistant", f"turn {n} of {m.conversation_id}")
        await asyncio.sleep(0)
    sys.stdout.write("READY " + " ".join(ids) + "\n")
    sys.stdout.flush()
    await asyncio.Event().wait()


if __name__ == "__main__":
    asyncio.run(main(int(sys.argv[1]), int(sys.argv[2])))
