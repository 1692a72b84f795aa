"""The pipeline of `mossa run`: one module per stage, in order.

- :mod:`~mossa.pipeline.tasks`: build the task suite; freeze tasks.json and the analysis prompts
- :mod:`~mossa.pipeline.train`: LoRA SFT on all seen tasks and one control per task
- :mod:`~mossa.pipeline.evaluate`: task metrics of base, SFT and controls
- :mod:`~mossa.pipeline.extract`: hidden states of the analysis prompts
- :mod:`~mossa.pipeline.analyze`: CKA tables, calibration, layer map, correlations, clustering
- :mod:`~mossa.pipeline.report`: figures and report.html

Each stage module has ``run(run_dir, cfg)``. :mod:`~mossa.pipeline.runner` holds the stage
table, the manifest and the runner; :mod:`~mossa.pipeline.executors` runs independent jobs
(locally or on Ray); :mod:`~mossa.pipeline.plan` estimates a run before it starts.
"""
