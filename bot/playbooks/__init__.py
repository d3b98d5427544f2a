"""Playbooks (issue 22): what the cell does first in one kind of crisis, one file each in
`config/playbooks/<key>.yaml`. Their shape and JSON Schema are in `shape.py`, what the bot uses
in `model.py` (`Playbook`, `ChecklistItem`, `PlaybookPage`, `PlaybookRound`), and `load.py`
reads the folder and checks every file against the directory and the duty rotas in force
(`load_playbooks`), with every problem one line, like theirs (`problems.py`)."""
