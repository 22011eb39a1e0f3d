"""Evaluating a fitted potential: predictions of an ASE calculator on structures and their
errors (:mod:`.predict`), the error metrics and the losses (:mod:`.metrics`).
"""
