"""Reports: accuracy grids, per-layer tables, computational gain, plots."""
