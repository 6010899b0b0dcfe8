"""A user's documents as passages (synthgen corpus ingest): which files, how each format is read,
how text is cut into passages, and the run that writes them through the store."""
