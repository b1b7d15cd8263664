"""Serving a trained recommender over HTTP: ``crossent serve``.

:mod:`~crossent.recsys.serving.app` (the FastAPI app, :func:`create_app`: endpoints, errors,
the page), :mod:`~crossent.recsys.serving.batcher` (concurrent requests batched into model
calls on worker threads, with a bounded queue), :mod:`~crossent.recsys.serving.engine` (a
batch of histories through :func:`crossent.recsys.serving.recommend.recommend_histories`),
:mod:`~crossent.recsys.serving.catalogue` (ids, titles, title search),
:mod:`~crossent.recsys.serving.requests` (reading a posted body within its limits) and
``page.html`` (the web page, one self-contained file). The package prints nothing; the
command (:mod:`crossent.cli.serve`) runs the app under uvicorn.
"""
