"""What a search shows a person: the figures (:mod:`.plots`), ``summary.md``
(:mod:`.summary`) and the papers' tables (:mod:`.paper`, run as ``python -m potune.paper``).
"""
