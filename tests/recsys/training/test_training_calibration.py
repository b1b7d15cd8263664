"""Post-hoc calibration of the ranking model: Platt scaling fitted on validation examples."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from sklearn.linear_model import LogisticRegression

from crossent.errors import CrossentError
from crossent.recsys.data.interactions import Interactions
from crossent.recsys.models.networks import CandidateConfig, CandidateModel
from crossent.recsys.models.ranker import RankingConfig, RankingModel
from crossent.recsys.models.ranking_inputs import RankingInputs
from crossent.recsys.ranking_stage import _calibrate
from crossent.recsys.serving.checkpoint import load_checkpoint, save_checkpoint
from crossent.recsys.training.loop import TrainConfig
from crossent.recsys.training.ranking import calibrate_ranking, fit_ranking, platt_scaling


def _sigmoid(margin: np.ndarray) -> np.ndarray:
    return 0.5 + 0.5 * np.tanh(0.5 * margin)


def _platt_log_loss(logits: np.ndarray, label: np.ndarray, scale: float, shift: float) -> float:
    """Mean log loss (nats) of sigmoid(scale * logits + shift), by PyTorch in float64.

    From the logits (no clipping of probabilities, unlike scikit-learn's ``log_loss``), so it
    stays exact for logits of +-100 and more.
    """
    margin = torch.from_numpy(scale * np.asarray(logits, dtype=np.float64) + shift)
    target = torch.from_numpy(np.asarray(label, dtype=np.float64))
    return float(torch.nn.functional.binary_cross_entropy_with_logits(margin, target))


def _inputs(n: int, dim: int = 4, n_dense: int = 3, seed: int = 0) -> RankingInputs:
    """Random ranking rows whose label depends on the first dense feature."""
    generator = torch.Generator().manual_seed(seed)
    dense = torch.randn(n, n_dense, generator=generator)
    label = (torch.rand(n, generator=generator) < torch.sigmoid(2 * dense[:, 0])).float()
    return RankingInputs(
        user=torch.randn(n, dim, generator=generator),
        item=torch.randn(n, dim, generator=generator),
        dense=dense,
        label=label,
    )


def test_platt_fit_equals_scikit_learn_unregularised_logistic_regression():
    rng = np.random.default_rng(0)
    logits = rng.normal(0.5, 2.0, size=5000)
    label = (rng.random(5000) < _sigmoid(0.6 * logits - 0.4 + 0.3 * rng.normal(size=5000))).astype(
        int
    )
    scale, shift = platt_scaling(logits, label)
    reference = LogisticRegression(C=1e12, solver="newton-cholesky", tol=1e-12, max_iter=1000)
    reference.fit(logits[:, None], label)
    assert scale == pytest.approx(reference.coef_[0, 0], abs=1e-6)
    assert shift == pytest.approx(reference.intercept_[0], abs=1e-6)


def measure_platt_recovery(seed: int) -> dict[str, float]:
    """Platt's (scale, shift) on two drawn data sets whose true distortion is known."""
    # truth P(y = 1) = sigmoid(2 z + 1) while the model says sigmoid(z): Platt gives (2, 1)
    rng = np.random.default_rng(seed)
    logits = rng.normal(0.0, 1.5, size=200_000)
    label = (rng.random(len(logits)) < _sigmoid(2.0 * logits + 1.0)).astype(int)
    scale, shift = platt_scaling(logits, label)
    # a calibrated model: Platt gives the identity (1, 0)
    logits = rng.normal(-1.0, 2.0, size=100_000)
    label = (rng.random(len(logits)) < _sigmoid(logits)).astype(int)
    identity_scale, identity_shift = platt_scaling(logits, label)
    return {
        "distorted: scale - 2": scale - 2.0,
        "distorted: shift - 1": shift - 1.0,
        "calibrated: scale - 1": identity_scale - 1.0,
        "calibrated: shift": identity_shift,
    }


@pytest.mark.statistical
def test_a_known_distortion_of_the_logit_is_recovered():
    # 20 seeds: std 0.009 and 0.007 (docs/TESTING.md)
    values = measure_platt_recovery(1)
    assert abs(values["distorted: scale - 2"]) < 0.05
    assert abs(values["distorted: shift - 1"]) < 0.05


@pytest.mark.statistical
def test_calibrated_logits_of_a_calibrated_model_fit_the_identity():
    # 20 seeds: std 0.009 of each (docs/TESTING.md); 0.04 is 4 of them
    values = measure_platt_recovery(1)
    assert abs(values["calibrated: scale - 1"]) < 0.04
    assert abs(values["calibrated: shift"]) < 0.04


@settings(max_examples=60, deadline=None)
@given(
    n=st.integers(2, 200),
    seed=st.integers(0, 2**32 - 1),
    spread=st.sampled_from([0.0, 0.1, 3.0, 100.0]),
    direction=st.sampled_from([-1.0, 0.0, 1.0, 5.0]),
)
def test_calibration_never_increases_the_log_loss_it_is_fitted_on(n, seed, spread, direction):
    # the identity (1, 0) is in the family and the fit starts there, only ever going downhill
    rng = np.random.default_rng(seed)
    logits = spread * rng.normal(size=n)
    label = (rng.random(n) < _sigmoid(direction * logits)).astype(int)
    label[:2] = [0, 1]  # both classes
    scale, shift = platt_scaling(logits, label)
    assert np.isfinite([scale, shift]).all()
    before = _platt_log_loss(logits, label, 1.0, 0.0)
    after = _platt_log_loss(logits, label, scale, shift)
    assert after <= before + 1e-12


def test_perfectly_separated_classes_give_finite_parameters_and_a_lower_loss():
    logits = np.array([-3.0, -2.0, -1.0, 1.0, 2.0, 3.0])
    label = np.array([0, 0, 0, 1, 1, 1])
    scale, shift = platt_scaling(logits, label)
    assert np.isfinite([scale, shift]).all() and scale > 1.0
    assert _platt_log_loss(logits, label, scale, shift) < _platt_log_loss(logits, label, 1, 0)


@pytest.mark.parametrize(
    ("logits", "label", "message"),
    [
        ([0.1, 0.2, 0.3], [1, 1, 1], "needs both classes in the labels; all 3 are 1"),
        ([0.1, 0.2], [0, 0], "needs both classes in the labels; all 2 are 0"),
        ([], [], "at least one: got 0 logits and 0 labels"),
        ([0.1, 0.2], [0, 1, 1], "got 2 logits and 3 labels"),
        ([0.1, np.nan], [0, 1], "must be finite"),
        ([0.1, np.inf], [0, 1], "must be finite"),
        ([0.1, 0.2], [0, 2], "must be 0 or 1"),
    ],
)
def test_bad_calibration_input_is_a_named_error(logits, label, message):
    with pytest.raises(CrossentError, match=message):
        platt_scaling(np.array(logits, dtype=np.float64), np.array(label))


def test_forward_applies_the_calibration_to_the_network_logits():
    torch.manual_seed(0)
    model = RankingModel(RankingConfig(dim=4, n_dense=3))
    inputs = _inputs(50)
    raw = model.uncalibrated_logits(inputs.user, inputs.item, inputs.dense)
    torch.testing.assert_close(model(inputs.user, inputs.item, inputs.dense), raw)  # identity
    model.calibration_scale.fill_(0.5)
    model.calibration_shift.fill_(-2.0)
    torch.testing.assert_close(model(inputs.user, inputs.item, inputs.dense), 0.5 * raw - 2.0)


def test_calibrate_ranking_stores_the_platt_fit_of_the_validation_logits():
    torch.manual_seed(0)
    model = RankingModel(RankingConfig(dim=4, n_dense=3))
    fit_ranking(model, _inputs(2000), _inputs(500, seed=1), TrainConfig(epochs=2), progress=False)
    valid = _inputs(800, seed=2)
    scale, shift = calibrate_ranking(model, valid)
    with torch.no_grad():
        raw = model.uncalibrated_logits(valid.user, valid.item, valid.dense).double().numpy()
    reference = LogisticRegression(C=1e12, solver="newton-cholesky", tol=1e-12).fit(
        raw[:, None], valid.label.numpy().astype(int)
    )
    assert scale == pytest.approx(reference.coef_[0, 0], abs=1e-6)
    assert shift == pytest.approx(reference.intercept_[0], abs=1e-6)
    assert float(model.calibration_scale) == pytest.approx(scale, rel=1e-6)
    assert float(model.calibration_shift) == pytest.approx(shift, rel=1e-6, abs=1e-7)


def test_fit_ranking_starts_from_the_identity_calibration():
    torch.manual_seed(0)
    model = RankingModel(RankingConfig(dim=4, n_dense=3))
    model.calibration_scale.fill_(3.0)
    model.calibration_shift.fill_(1.0)
    fit_ranking(model, _inputs(500), _inputs(200, seed=1), TrainConfig(epochs=1), progress=False)
    assert float(model.calibration_scale) == 1.0 and float(model.calibration_shift) == 0.0


def test_pipeline_keeps_the_identity_when_validation_has_one_class_or_loss_is_watch_time():
    torch.manual_seed(0)
    model = RankingModel(RankingConfig(dim=4, n_dense=3))
    one_class = _inputs(100)
    one_class = RankingInputs(
        one_class.user, one_class.item, one_class.dense, torch.zeros(100)
    )
    assert _calibrate(model, one_class, None).startswith(
        "identity (calibration needs both classes"
    )
    watch_time = RankingModel(RankingConfig(dim=4, n_dense=3, loss="watch-time"))
    assert _calibrate(watch_time, _inputs(100), None).startswith("identity (watch-time")
    for calibrated in (model, watch_time):
        assert float(calibrated.calibration_scale) == 1.0
        assert float(calibrated.calibration_shift) == 0.0


def _checkpoint(tmp_path, ranking: RankingModel):
    candidate = CandidateModel(CandidateConfig(n_items=3, dim=4, history=3))
    watches = Interactions.from_arrays(np.array([0, 0, 1]), np.array([1, 2, 3]), np.arange(3))
    return save_checkpoint(tmp_path, candidate, watches, ranking=ranking)


def test_checkpoint_round_trip_keeps_the_calibration(tmp_path):
    torch.manual_seed(0)
    model = RankingModel(RankingConfig(dim=4, n_dense=3))
    model.calibration_scale.fill_(0.375)
    model.calibration_shift.fill_(-0.25)
    _checkpoint(tmp_path, model)
    loaded = load_checkpoint(tmp_path).ranking
    assert loaded is not None
    assert float(loaded.calibration_scale) == 0.375
    assert float(loaded.calibration_shift) == -0.25
    inputs = _inputs(20)
    torch.testing.assert_close(
        loaded(inputs.user, inputs.item, inputs.dense),
        model(inputs.user, inputs.item, inputs.dense),
    )


def test_a_model_ordering_validation_worse_than_chance_is_not_calibrated():
    torch.manual_seed(0)
    model = RankingModel(RankingConfig(dim=4, n_dense=3))
    fit_ranking(model, _inputs(2000), _inputs(500, seed=1), TrainConfig(epochs=2), progress=False)
    valid = _inputs(800, seed=2)
    flipped = RankingInputs(valid.user, valid.item, valid.dense, 1.0 - valid.label)
    with pytest.raises(CrossentError, match=r"calibration scale -[0-9.]+ <= 0: on the 800"):
        calibrate_ranking(model, flipped)
    assert float(model.calibration_scale) == 1.0 and float(model.calibration_shift) == 0.0
    assert _calibrate(model, flipped, None).startswith("identity (calibration scale -")
