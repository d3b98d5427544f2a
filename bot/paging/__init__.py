"""Paging partners and knowing they got it: pages (`PG-n`) with acknowledgements, escalation to
backups and the unreachable report, and communication checks."""
