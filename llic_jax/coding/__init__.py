"""Bitstream container and the compress/decompress pipeline."""
