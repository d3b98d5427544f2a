"""The bot's web endpoints (aiohttp.web): the people's (`server`: acknowledgement links,
inbound SMS, situation boards) and the operators' (`ops`), both served by `endpoint`."""
