"""Pieces both services share: typed settings loading and logging set-up."""
