"""The chat surface's machinery: the command registry (commands and the passive handlers of
replies, reactions and redactions), typed arguments, the dispatch of an inbox event to its
handler and its one framed answer, and the classification guard. The words themselves are
rendered by `bot.render`; the services a handler calls are built in `bot.services`."""
