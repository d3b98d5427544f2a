"""The live situation board (SPEC, "Situation board"): one read-only page per activation for the
crisis room's wall screen and a DG's phone, at `ICC_PUBLIC_URL/board/<token>`.

`links.py` signs and reads the board links (their own key, so an acknowledgement link never opens
a board); `picture.py` reads an activation's state and shapes it for the page, in the viewer's
time zone; `chart.py` draws the acknowledgement latency per organisation as SVG; `boards.py` is
the capability: `board` and `board revoke`, and each board's rendering, shared by every viewer
of the same activation in the same zone and renewed when the activation changes
(`bot.runtime.changes`). The HTTP side, server-sent events included, is `bot.web.board`; the
rows are `bot.storage.situation_board_store`; the commands `bot.commands.situation_board`.
"""
