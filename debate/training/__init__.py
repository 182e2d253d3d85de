"""Training debaters from stored debates: preference data, DPO, and the self-play loop.

    preferences   chosen/rejected pairs from best-of-N candidates and paired rollouts
    pairs_io      the preference data folder (TRL layout, a datasets folder, the manifest)
    settings      DPO settings YAML (validated; errors name the field)
    dpo           `debate train dpo`: TRL DPOTrainer (+ PEFT LoRA), resumable
    loss          the DPO loss of a model against a reference on stored pairs
    exploits      per-experiment counts of the holes a trained debater may find
    loop_config   the loop's YAML config, validated
    loop          rounds of self-play -> preference data -> DPO -> new debater
    report        the loop's per-round table, ratings, strength curve and plots

Method: Arnesen et al. 2024, "Training Language Models to Win Debates with Self-Play
Improves Judge Accuracy".
"""
