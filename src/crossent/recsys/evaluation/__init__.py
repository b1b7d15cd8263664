"""How a model is judged: the retrieval protocol (:mod:`.protocol`) and the next watch's
cross-entropy with the Bayes limit where the truth is known (:mod:`.next_watch`). Training
validates through it; a saved model is scored again by :mod:`crossent.recsys.reevaluate`."""
