"""The calibration search of MODEL.md §7 (docs/calibration.md): the regime
metrics and scores (:mod:`~nmmval.calibration.calibrate`) and the staged
search that writes docs/calibration/ (``python -m nmmval.calibration.run``)."""
