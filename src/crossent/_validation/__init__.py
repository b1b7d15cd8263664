"""Input validation: every rule that user input must pass, in one place.

``tensors`` checks torch inputs of the losses and kernels; ``arrays`` checks NumPy inputs of
the metrics. Kernels, metrics internals and file scoring assume inputs that passed here.
"""
