"""RL problem curation (``mimo data curate-rl``): rule filters, near-duplicate and contamination removal, and the
difficulty filter that rolls out the starting model; every dropped problem is reported with its reason."""
