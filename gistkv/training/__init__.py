"""Training the gist tokens (and the plain-LoRA control): config, records, loop, checkpoints."""
