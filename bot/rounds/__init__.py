"""Coordination rounds (`RD-n`): when a series recurs (`recurrence.py`: everyday phrases and
cron, in a named zone) and its runs, with prompt, reminder and summary (`runs.py`)."""
