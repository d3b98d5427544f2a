"""What keeps the bot running: durable timers, background tasks, catching up after an absence,
active/standby leadership, health, metrics and logs."""
