"""The command-line helpers behind gistkv bench, doctor and smoke-gpu."""
