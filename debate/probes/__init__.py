"""White-box deception probes on the debaters' activations, set against the judges.

    capture   debate.backends.capture: hidden states recorded during generation
    data      stored vectors + labels (side: the speaker argues the false answer)
    instructed  honest/dishonest instruction pairs run through the same model
    train     logistic regression (standardised) or difference of means, grouped CV
    metrics   AUROC with cluster-bootstrap interval, recall at 1% FPR, shuffled labels
    workflow  `debate probes train | score`
    report    the `probes*` tables of `debate analyze` and the per-layer plot

Probe scores are ground truth in disguise: they reach analysis, exports and the admin's
Browse view only, never a judge's view or a model judge's prompt.
"""
