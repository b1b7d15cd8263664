"""How the models learn: the epoch loop with early stopping (:mod:`.loop`), the ranking
stage's fit and Platt scaling (:mod:`.ranking`), per-epoch training state and Ctrl-C
(:mod:`.resume`) and the catalogue-sharded softmax under torchrun (:mod:`.parallel`)."""
