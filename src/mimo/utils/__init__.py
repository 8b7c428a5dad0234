"""Small shared helpers: JSONL I/O, logging and progress, seeding."""
