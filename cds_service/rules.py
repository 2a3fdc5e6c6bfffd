"""Placeholder: replaced by the rulebook (issue 4)."""


def load_rulebook(profiles_dir, terminology):
    return None
