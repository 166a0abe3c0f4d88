"""`safedreamer sweep`: tasks x methods x seeds of ordinary `train` runs on Ray.

  spec.py    the sweep (options or a YAML file), its trials, each trial's arguments
             and environment (CPU threads, GPU memory share)
  engine.py  Ray: one task per trial running `safedreamer train` in a subprocess,
             retried when it dies; why Ray's task API rather than Ray Tune
  watch.py   trial states and progress read from the trial folders; the live table

The sweep sits above `report/` (it writes the sweep's table and curves) and below
`cli.py`. See docs/sweeps.md.
"""
