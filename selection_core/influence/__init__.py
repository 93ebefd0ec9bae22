"""Influence-based selection: LESS gradient features, the attribution matrix, BIDS."""

PROGRESS = "influence"  # DIR/progress/influence.json: what the running stage has done (the app polls it)
