"""Input validation: every rule that user input must pass, written once.

* :mod:`.choices` -- the option vocabularies as ``Literal`` types (``Reduction``,
  ``Smoothing``, ...) and :func:`~.choices.check_choice`, which reads the valid values from
  the type.
* :mod:`.numbers` -- scalar options: :func:`~.numbers.check_int`,
  :func:`~.numbers.check_number` (bounds, open or closed), :func:`~.numbers.check_bool`.
* :mod:`.masks` -- boolean masks of invalid values (not finite, outside [0, 1], negative, rows
  off the simplex) for NumPy arrays and torch tensors alike, and the one tolerance of "sums to
  1": ``|sum - 1| <= max(1e-3, 2 * eps(dtype))`` (:func:`~.masks.sum_tolerance`).
* :mod:`.offender` -- the one wording of "the first offender": argument, position, value.
* :mod:`.rules` -- the value rules built from the two above; each raises one message.
* :mod:`.tensors` / :mod:`.arrays` -- what only torch inputs (dtype, device, class indices,
  class weights) or only NumPy inputs (conversion, sample weights, labels) need.
* :mod:`.switch` -- validation on or off, per call (``validate=``) and for a block
  (``crossent.validation(False)``), and what each mode costs.

Losses, metrics, file scoring, the sharded loss and the configs validate through these; the
kernels and the metrics' arithmetic assume valid input. Only :mod:`.tensors` imports torch.
"""
