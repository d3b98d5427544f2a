"""Input requests (`RQ-n`): asking partners for input, reminders and chases, the advice note."""
