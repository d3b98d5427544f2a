"""The liaison directory: who is who (the model and its validation), the directory in force
(its keeper), roles, and outsiders in the bot's own rooms."""
