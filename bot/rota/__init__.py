"""Duty rotas (issue 19): who is on duty in a team at any instant. The files are read in
`load.py` (`load_rotas`: every team of `config/rota/`, with problems and warnings), YAML rotas
in `weekly.py` on the shape of `shape.py`, calendars in `calendar.py`, people checked with the
directory in `people.py`; the timeline every question reads is `model.py` (`Rotas`, `Rota`,
`Shift`)."""
