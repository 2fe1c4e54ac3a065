"""gistkv: compress a long context into the key/value cache of a few gist tokens, and answer from it."""
