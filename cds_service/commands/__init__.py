"""Sub-commands of ``her2-cds``; each module exposes ``command``."""
