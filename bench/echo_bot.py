"""The floor a Matrix bot cannot beat: a bare matrix-nio bot that answers each command at once.

It logs in, syncs (long-poll, like the ICC bot), and answers every text starting with its prefix
with an `m.notice` replying to it, echoing the command. No database, no directory, no templates:
what is left is the homeserver and nio. It accepts every invite. With a token file it resumes
from its last sync position, as the ICC bot does, and answers commands that arrived meanwhile.

Run as a process: `python -m bench.echo_bot` with ECHO_HOMESERVER, ECHO_USER_ID, ECHO_PASSWORD,
ECHO_PREFIX (default `!icc`) and optionally ECHO_TOKEN_FILE in the environment.
"""

from __future__ import annotations

import asyncio
import os
from pathlib import Path

from nio import AsyncClient, RoomSendError, SyncError, SyncResponse


class EchoBot:
    def __init__(self, homeserver: str, user_id: str, password: str, prefix: str = "!icc"):
        self.client = AsyncClient(homeserver, user_id)
        self.password = password
        self.prefix = prefix

    async def run(self, token_file: Path | None = None, since: str | None = None) -> None:
        """Sync from `since` (None: a first start, history skipped), saving to `token_file`."""
        await self.client.login(self.password, device_name="echo")
        first = await self.client.sync(timeout=0, since=since, full_state=True)
        while isinstance(first, SyncError):
            await asyncio.sleep(1)
            first = await self.client.sync(timeout=0, since=since, full_state=True)
        if since:
            await self._answer(first)  # what arrived while it was down
        await self._join_invites(first)
        self._save(token_file, first.next_batch)
        print("ready", flush=True)
        while True:
            response = await self.client.sync(timeout=30_000)
            if isinstance(response, SyncError):
                await asyncio.sleep(1)
                continue
            await self._answer(response)
            await self._join_invites(response)
            self._save(token_file, response.next_batch)

    async def _answer(self, response: SyncResponse) -> None:
        sends = []
        for room_id, info in response.rooms.join.items():
            for event in info.timeline.events:
                source = event.source
                content = source.get("content") or {}
                body = str(content.get("body", ""))
                if source.get("sender") == self.client.user_id or not body.startswith(self.prefix):
                    continue
                reply = {
                    "msgtype": "m.notice",
                    "body": f"echo: {body}",
                    "m.relates_to": {"m.in_reply_to": {"event_id": source["event_id"]}},
                }
                sends.append(self.client.room_send(room_id, "m.room.message", reply))
        for sent in await asyncio.gather(*sends):
            if isinstance(sent, RoomSendError):  # in the log, or a bench waits with no reason
                print(f"could not answer: {sent.status_code} {sent.message}", flush=True)

    async def _join_invites(self, response: SyncResponse) -> None:
        await asyncio.gather(*(self.client.join(room) for room in response.rooms.invite))

    @staticmethod
    def _save(token_file: Path | None, token: str) -> None:
        if token_file is not None:
            token_file.write_text(token)


def main() -> None:
    env = os.environ
    bot = EchoBot(
        env["ECHO_HOMESERVER"],
        env["ECHO_USER_ID"],
        env["ECHO_PASSWORD"],
        env.get("ECHO_PREFIX", "!icc"),
    )
    token = Path(env["ECHO_TOKEN_FILE"]) if env.get("ECHO_TOKEN_FILE") else None
    since = token.read_text().strip() if token and token.exists() else None
    asyncio.run(bot.run(token, since))


if __name__ == "__main__":
    main()
