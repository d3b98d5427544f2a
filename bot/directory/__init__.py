"""The liaison directory: who is who (the model and its validation, on the file's shape: typed
models and their JSON Schema in `shape.py`), the directory in force (its keeper), roles, how
people search it (`lookup.py`: `contacts`, `contact`), and outsiders in the bot's own rooms."""
