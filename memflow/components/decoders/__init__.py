"""decoders."""
