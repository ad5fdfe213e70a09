"""Optimisers and learning-rate schedules: registered components like every other part of a recipe."""
