"""Influence-based selection: LESS gradient features, the attribution matrix, BIDS."""
