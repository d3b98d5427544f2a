"""ICC activations, the cell's unit of work: opening and closing one, its logbook, its
record (exports, handover, closing bundle), where it stands (`status`), and the DG digest."""
