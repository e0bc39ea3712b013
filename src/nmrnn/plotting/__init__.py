"""Figures. Plotting functions take data (models, trajectories, run directories) and a path, write
a PNG with matplotlib's Agg backend, and return the path; library code never plots."""
