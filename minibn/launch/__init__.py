"""Running the runs of `minibn sweep`: where each run goes, what state it is in, and who trains it.

- runs.py: the grid as a list of RunSpec (one run folder each), a run's state, one sweep per folder,
  and the grid's own results (any other run folder is left out).
- task.py: training one RunSpec; the same function runs in the sweep's own process, in a worker
  process of the local launcher and in a Slurm array task.
- local.py: the local launcher, one run after another, or N at once as separate processes (--jobs),
  each on its own GPU (--devices).
- devices.py: which GPU each worker gets under an inherited CUDA_VISIBLE_DEVICES, counted without
  a CUDA context in the launcher.
- slurm.py: the Slurm launcher, one job array through submitit; the queue tells pending from running.
"""
