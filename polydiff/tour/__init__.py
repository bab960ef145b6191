"""``polydiff demo``: the tour of every app and its ``report.html``."""
