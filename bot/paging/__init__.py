"""Paging partners and knowing they got it, a module per job: `send` makes and delivers pages
(`PG-n`), `board` shows where they stand (in the activation room, in `pages`, in status),
`answers` records acks, declines and a withdrawn ✅ (`acks`: the words and reactions that
acknowledge, on every channel), `escalation` pages again, pages the backup and
reports who could not be reached, on the durable timers of `steps`; `commchecks` runs
communication checks."""
