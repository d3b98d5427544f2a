"""ICC activations, the cell's unit of work: opening and closing one (`activation.py`), its
logbook (`logbook.py`), what leaves it as files — logbook exports, the handover summary, the
closing record bundle (`exports.py`) — where it stands (`situation.py`), and the DG digest."""
