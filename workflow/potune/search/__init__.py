"""The search: the space (:mod:`.space`), the optimisers behind skopt's ask/tell protocol
(:mod:`.protocol`, :mod:`.bayes`, :mod:`.pso`, :mod:`.designs`, registered in
:mod:`.optimizers`), the loop's decisions (:mod:`.loop`: replay, propose, stop rules, priors)
and the two-stage strategy's configuration (:mod:`.twostage`).
"""
