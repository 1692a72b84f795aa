"""Task clustering over training: synthetic regex tasks, a GPT-2 trained from scratch, k-means/ARI.

Entry point: :func:`mossa.clustering.experiment.run_clustering`; command ``mossa clustering``.
"""
