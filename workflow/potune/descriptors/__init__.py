"""Descriptors outside a fit: SOAP vectors of atomic environments through quippy
(:mod:`.soap`), the statistics of their kernel distribution (:mod:`.kernel`, PPSO's stage-1
criterion) and the check of that criterion against fitted GAPs (:mod:`.objective_check`).
"""
