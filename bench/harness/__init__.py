"""The machinery behind `python3 bench/run.py`, one module per job:

- `common`: paths, the PostgreSQL server, running commands, small HTTP and statistics helpers.
- `apps`: the apps under test (generated projects and the reference apps in bench/apps/) and routes.
- `serving`: generates and installs the projects, makes their databases, serves an app under uvicorn.
- `load`: drives the load generators: wrk at saturation, loadtest at a fixed rate.
- `resources`: CPU and memory of the app's process and of the machine, from /proc.
- `benchmark`: the rounds: each app started afresh, checked, and loaded route by route.
- `timing`: wall time of `copier copy` and of the template's matrix tests.
- `targets`: the ratios the generated apps should reach, and whether they do.
- `report`: writes RESULTS.md.
- `profiling`: py-spy profiles under load, summarised into PROFILE.md.
- `soak`: the memory soak: one app under a long mix of requests, its RSS after every step.
"""
