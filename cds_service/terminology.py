"""Placeholder: replaced by the terminology loader (issue 3)."""


def load_terminology(profiles_dir):
    return None
