"""What predicts a watch: the candidate and ranking networks (:mod:`.networks`), the causal
self-attention encoder (:mod:`.sequence`), the training objectives (:mod:`.objectives`), the
ranking stage's inputs and metrics (:mod:`.ranking_inputs`), a real log's ranking examples
(:mod:`.logged_ranking`) and the closed-form baselines (:mod:`.baselines`: most popular,
EASE)."""
