"""Where watches come from: the interaction table and its split (:mod:`.interactions`), file
loaders (:mod:`.loaders`), titles beside MovieLens files (:mod:`.titles`) and the simulated
watch log with known truth (:mod:`.simulate`, :mod:`.impressions`)."""
