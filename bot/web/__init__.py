"""The bot's web endpoint (aiohttp.web): acknowledgement links today."""
