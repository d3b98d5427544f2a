"""Reaching people: their direct-message rooms with the bot (where pages and requests go)."""
