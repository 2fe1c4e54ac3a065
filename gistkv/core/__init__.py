"""The compressor: base model, gist tokens, the gist KV cache file, prompts and decoding."""
