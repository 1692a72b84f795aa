"""The analyze stage: MOSSA CKA tables, calibration, spectra, clustering and the layer map.

Every result is a file in ``RUN/tables`` (schemas in :mod:`mossa.analysis.tables`); the
report stage only reads them.
"""
