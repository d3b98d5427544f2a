"""Coordination rounds (`RD-n`): schedules, runs with prompt, reminder and summary."""
