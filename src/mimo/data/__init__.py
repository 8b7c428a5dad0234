"""Data: token shards, the toy verifiable tasks, and the pretraining data pipeline (extract, dedup, tag, mix)."""
