"""crossent.nn: Module wrappers equal the functional losses; tensors are buffers."""

from __future__ import annotations

import re

import pytest
import torch
import torch.nn.functional as F

import crossent
import crossent.nn as cnn
from crossent import CrossentError


def test_cross_entropy_loss_module_equals_function_and_registers_weight() -> None:
    gen = torch.Generator().manual_seed(0)
    logits = torch.randn(6, 4, 3, generator=gen)
    target = torch.randint(0, 4, (6, 3), generator=gen)
    weight = torch.rand(4, generator=gen)
    options = {"ignore_index": 1, "label_smoothing": 0.2, "smoothing": "off_target",
               "base": "bits", "reduction": "sum"}
    module = cnn.CrossEntropyLoss(weight, **options)
    assert torch.equal(
        module(logits, target), crossent.cross_entropy(logits, target, weight=weight, **options)
    )
    assert "weight" in dict(module.named_buffers())
    assert torch.equal(module.state_dict()["weight"], weight)
    assert isinstance(module, torch.nn.Module)


def test_module_matches_torch_module_with_default_options() -> None:
    logits = torch.randn(5, 3, dtype=torch.float64)
    target = torch.tensor([0, 2, 1, 1, 0])
    torch.testing.assert_close(
        cnn.CrossEntropyLoss()(logits, target), torch.nn.CrossEntropyLoss()(logits, target)
    )


def test_binary_cross_entropy_loss_module_equals_function() -> None:
    logits = torch.randn(4, 3)
    target = torch.rand(4, 3)
    weight, pos_weight = torch.rand(4, 1), torch.rand(3)
    module = cnn.BinaryCrossEntropyLoss(weight, pos_weight, label_smoothing=0.1)
    assert torch.equal(
        module(logits, target),
        crossent.binary_cross_entropy(
            logits, target, weight=weight, pos_weight=pos_weight, label_smoothing=0.1
        ),
    )
    assert set(dict(module.named_buffers())) == {"weight", "pos_weight"}


def test_focal_loss_module_equals_function_with_tensor_and_scalar_alpha() -> None:
    logits = torch.randn(5, 3)
    target = torch.tensor([0, 1, 2, 2, -100])
    alpha = torch.tensor([0.2, 0.3, 0.5])
    module = cnn.FocalLoss(gamma=1.5, alpha=alpha)
    assert torch.equal(
        module(logits, target), crossent.focal_loss(logits, target, gamma=1.5, alpha=alpha)
    )
    assert "alpha_weight" in dict(module.named_buffers())
    binary = cnn.FocalLoss(alpha=0.25, mode="binary")
    labels = torch.rand(5, 3).round()
    assert torch.equal(
        binary(logits, labels), crossent.focal_loss(logits, labels, alpha=0.25, mode="binary")
    )
    assert binary.alpha == 0.25


def test_buffers_follow_the_module_dtype() -> None:
    module = cnn.CrossEntropyLoss(torch.ones(3)).double()
    assert module.weight is not None and module.weight.dtype == torch.float64


def test_bad_options_fail_at_construction() -> None:
    with pytest.raises(CrossentError, match=re.escape("reduction = 'avg' is not one of")):
        cnn.CrossEntropyLoss(reduction="avg")  # type: ignore[arg-type]
    with pytest.raises(CrossentError, match=re.escape("label_smoothing = 2 is outside [0, 1]")):
        cnn.BinaryCrossEntropyLoss(label_smoothing=2)
    with pytest.raises(CrossentError, match=re.escape("gamma = -1 must be a finite number")):
        cnn.FocalLoss(gamma=-1)
    with pytest.raises(CrossentError, match=re.escape("base = 1 must be a finite number > 1")):
        cnn.FocalLoss(base=1)


# --- z_loss, softcap and inplace on CrossEntropyLoss; LinearCrossEntropyLoss ------------------

needs_cuda = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")


def _scores_case() -> tuple[torch.Tensor, torch.Tensor]:
    gen = torch.Generator().manual_seed(1)
    logits = 4 * torch.randn(7, 5, dtype=torch.float64, generator=gen)
    target = torch.randint(0, 5, (7,), generator=gen)
    target[3] = 2  # the ignore_index of one case below
    return logits, target


@pytest.mark.parametrize("implementation", ["reference", "auto"])
@pytest.mark.parametrize(
    "options",
    [
        {"z_loss": 0.05},
        {"softcap": 2.0},
        {"z_loss": 0.05, "softcap": 2.0, "label_smoothing": 0.1, "ignore_index": 2,
         "reduction": "none", "base": "bits"},
    ],
)
def test_cross_entropy_loss_z_loss_and_softcap_give_the_functions_value(
    options: dict, implementation: str
) -> None:
    logits, target = _scores_case()
    weight = torch.linspace(0.5, 1.5, 5, dtype=torch.float64)
    module = cnn.CrossEntropyLoss(weight, implementation=implementation, **options)
    expected = crossent.cross_entropy(
        logits, target, weight=weight, implementation=implementation, **options
    )
    assert torch.equal(module(logits, target), expected)
    without = {k: v for k, v in options.items() if k not in ("z_loss", "softcap")}
    plain = crossent.cross_entropy(logits, target, weight=weight, **without)
    assert not torch.allclose(expected, plain)  # the options change this case's loss


def test_cross_entropy_loss_inplace_consumes_the_input_as_the_function_does() -> None:
    logits, target = _scores_case()
    leaf = logits.clone().requires_grad_(True)
    expected = crossent.cross_entropy(leaf, target, z_loss=0.01)
    (expected_grad,) = torch.autograd.grad(expected, leaf)
    consumed = logits.clone().requires_grad_(True)
    loss = cnn.CrossEntropyLoss(inplace=True, z_loss=0.01)(consumed, target)
    loss.backward()
    assert torch.equal(loss.detach(), expected.detach())
    assert consumed.grad is not None
    torch.testing.assert_close(consumed.grad, expected_grad)
    assert not torch.equal(consumed.detach(), logits)  # the kernel wrote into the input


def _linear_case(dtype: torch.dtype = torch.float64) -> dict[str, torch.Tensor]:
    gen = torch.Generator().manual_seed(2)
    rows, dim, classes = 9, 6, 11
    target = torch.randint(0, classes, (rows,), generator=gen)
    target[[2, 5]] = 4  # the ignore_index below
    return {
        "hidden": torch.randn(rows, dim, dtype=dtype, generator=gen),
        "weight": torch.randn(classes, dim, dtype=dtype, generator=gen),
        "bias": torch.randn(classes, dtype=dtype, generator=gen),
        "logit_bias": torch.randn(classes, dtype=dtype, generator=gen),
        "class_weight": torch.rand(classes, dtype=dtype, generator=gen) + 0.5,
        "target": target,
    }


LINEAR_OPTIONS = {
    "temperature": 0.7, "chunk_size": 4, "ignore_index": 4, "label_smoothing": 0.1,
    "smoothing": "off_target", "base": "bits", "z_loss": 0.02, "softcap": 3.0,
}


@pytest.mark.parametrize("reduction", ["mean", "sum", "none"])
def test_linear_cross_entropy_loss_equals_the_function_and_the_full_logits_loss(
    reduction: str,
) -> None:
    case = _linear_case()
    hidden, weight, target, bias = case["hidden"], case["weight"], case["target"], case["bias"]
    tensors = {"class_weight": case["class_weight"], "logit_bias": case["logit_bias"]}
    options = {**LINEAR_OPTIONS, "reduction": reduction}
    module = cnn.LinearCrossEntropyLoss(**tensors, **options)
    value = module(hidden, weight, target, bias)
    expected = crossent.linear_cross_entropy(
        hidden, weight, target, bias=bias, **tensors, **options
    )
    assert torch.equal(value, expected)
    # independently: crossent.cross_entropy on the materialised logits, same options
    logits = (hidden @ weight.T + bias + case["logit_bias"]) / options.pop("temperature")
    del options["chunk_size"]
    full = crossent.cross_entropy(logits, target, weight=case["class_weight"], **options)
    torch.testing.assert_close(value, full)


def test_linear_cross_entropy_loss_with_defaults_is_torchs_cross_entropy_of_the_logits() -> None:
    case = _linear_case()
    hidden, weight, target = case["hidden"], case["weight"], case["target"]
    torch.testing.assert_close(
        cnn.LinearCrossEntropyLoss()(hidden, weight, target),
        torch.nn.CrossEntropyLoss()(hidden @ weight.T, target),
    )


def test_linear_cross_entropy_loss_gradients_match_autograd_of_the_plain_formula() -> None:
    case = _linear_case()
    target, class_weight, logit_bias = case["target"], case["class_weight"], case["logit_bias"]
    cap, c_z, temperature, ignore, eps = 3.0, 0.02, 0.7, 4, 0.1
    module = cnn.LinearCrossEntropyLoss(
        class_weight, logit_bias, temperature=temperature, ignore_index=ignore,
        label_smoothing=eps, z_loss=c_z, softcap=cap, chunk_size=4,
    )

    def leaves() -> list[torch.Tensor]:
        return [case[name].clone().requires_grad_(True) for name in ("hidden", "weight", "bias")]

    hidden, weight, bias = leaves()
    module(hidden, weight, target, bias).backward()

    plain_hidden, plain_weight, plain_bias = leaves()
    z = (plain_hidden @ plain_weight.T + plain_bias + logit_bias) / temperature
    z = cap * torch.tanh(z / cap)
    rows = F.cross_entropy(z, target, weight=class_weight, ignore_index=ignore,
                           label_smoothing=eps, reduction="none")
    keep = target != ignore
    rows = rows + torch.where(keep, c_z * torch.logsumexp(z, dim=1) ** 2, 0.0)
    (rows.sum() / class_weight[target[keep]].sum()).backward()

    for got, want in ((hidden, plain_hidden), (weight, plain_weight), (bias, plain_bias)):
        assert got.grad is not None and want.grad is not None
        assert want.grad.abs().sum() > 0
        torch.testing.assert_close(got.grad, want.grad)


def test_linear_cross_entropy_loss_holds_its_tensors_as_buffers() -> None:
    case = _linear_case(torch.float32)
    hidden, weight, target = case["hidden"], case["weight"], case["target"]
    module = cnn.LinearCrossEntropyLoss(case["class_weight"], case["logit_bias"], z_loss=0.01)
    assert set(dict(module.named_buffers())) == {"class_weight", "logit_bias"}
    assert list(module.parameters()) == []  # the projection is the model's, passed to forward
    assert set(module.state_dict()) == {"class_weight", "logit_bias"}
    assert "z_loss=0.01" in repr(module)
    assert set(cnn.LinearCrossEntropyLoss().state_dict()) == set()

    # forward reads the buffers: loading other ones changes the loss to theirs
    other = {"class_weight": torch.rand(11) + 0.5, "logit_bias": torch.randn(11)}
    module.load_state_dict(other)
    assert torch.equal(
        module(hidden, weight, target),
        crossent.linear_cross_entropy(hidden, weight, target, z_loss=0.01, **other),
    )

    moved = module.to(torch.float64)
    assert moved is module
    assert module.class_weight is not None and module.class_weight.dtype == torch.float64
    assert module.logit_bias is not None and module.logit_bias.dtype == torch.float64
    torch.testing.assert_close(
        module(hidden.double(), weight.double(), target),
        crossent.linear_cross_entropy(
            hidden.double(), weight.double(), target, z_loss=0.01,
            **{name: tensor.double() for name, tensor in other.items()},
        ),
    )


@pytest.mark.cuda
@needs_cuda
def test_modules_move_their_buffers_to_cuda_and_equal_the_functions_there() -> None:
    case = _linear_case(torch.float32)
    cuda = {name: tensor.cuda() for name, tensor in case.items()}
    module = cnn.LinearCrossEntropyLoss(
        case["class_weight"], case["logit_bias"], z_loss=0.02, softcap=3.0
    ).to("cuda")
    assert module.class_weight is not None and module.class_weight.is_cuda
    assert module.logit_bias is not None and module.logit_bias.is_cuda
    value = module(cuda["hidden"], cuda["weight"], cuda["target"], cuda["bias"])
    torch.testing.assert_close(
        value,
        crossent.linear_cross_entropy(
            cuda["hidden"], cuda["weight"], cuda["target"], bias=cuda["bias"],
            class_weight=cuda["class_weight"], logit_bias=cuda["logit_bias"],
            z_loss=0.02, softcap=3.0,
        ),
    )
    logits, target = _scores_case()
    scores = cnn.CrossEntropyLoss(torch.ones(5, dtype=torch.float64), z_loss=0.05).to("cuda")
    torch.testing.assert_close(
        scores(logits.cuda(), target.cuda()).cpu(),
        crossent.cross_entropy(logits, target, weight=torch.ones(5, dtype=torch.float64),
                               z_loss=0.05),
    )


def _function_error(loss: str, options: dict) -> str:
    """The message the functional loss raises for ``options`` on a valid small input."""
    case = _linear_case()
    with pytest.raises(CrossentError) as raised:
        if loss == "linear":
            crossent.linear_cross_entropy(case["hidden"], case["weight"], case["target"],
                                          **options)
        else:
            crossent.cross_entropy(*_scores_case(), **options)
    return str(raised.value)


@pytest.mark.parametrize(
    ("loss", "options", "name"),
    [
        ("scores", {"z_loss": -1.0}, "z_loss"),
        ("scores", {"z_loss": float("nan")}, "z_loss"),
        ("scores", {"softcap": 0.0}, "softcap"),
        ("scores", {"softcap": float("inf")}, "softcap"),
        ("scores", {"z_loss": 0.1, "input_kind": "probs"}, "z_loss"),
        ("scores", {"softcap": 5.0, "input_kind": "log_probs"}, "softcap"),
        ("scores", {"inplace": 1}, "inplace"),
        ("scores", {"ignore_index": 1.5}, "ignore_index"),
        ("linear", {"z_loss": -0.5}, "z_loss"),
        ("linear", {"softcap": -2.0}, "softcap"),
        ("linear", {"temperature": 0.0}, "temperature"),
        ("linear", {"temperature": float("inf")}, "temperature"),
        ("linear", {"chunk_size": 0}, "chunk_size"),
        ("linear", {"chunk_size": 2.5}, "chunk_size"),
        ("linear", {"ignore_index": "a"}, "ignore_index"),
        ("linear", {"smoothing": "both"}, "smoothing"),
        ("linear", {"label_smoothing": 1.5}, "label_smoothing"),
        ("linear", {"reduction": "avg"}, "reduction"),
        ("linear", {"base": 0.5}, "base"),
        ("linear", {"validate": "yes"}, "validate"),
    ],
)
def test_bad_new_options_fail_at_construction_with_the_functions_message(
    loss: str, options: dict, name: str
) -> None:
    module = cnn.LinearCrossEntropyLoss if loss == "linear" else cnn.CrossEntropyLoss
    with pytest.raises(CrossentError) as raised:
        module(**options)
    assert name in str(raised.value)
    assert str(raised.value) == _function_error(loss, options)


@pytest.mark.parametrize(
    ("module", "function"),
    [(cnn.CrossEntropyLoss, "cross_entropy"), (cnn.LinearCrossEntropyLoss,
                                               "linear_cross_entropy")],
)
def test_return_lse_is_refused_with_a_pointer_to_the_function(module: type, function: str) -> None:
    with pytest.raises(TypeError, match=re.escape(f"crossent.{function}(..., return_lse=True)")):
        module(return_lse=True)


def test_options_of_other_losses_are_refused() -> None:
    with pytest.raises(TypeError, match="unexpected keyword argument 'z_loss'"):
        cnn.FocalLoss(z_loss=0.1)  # type: ignore[call-arg]
    with pytest.raises(TypeError, match="unexpected keyword argument 'input_kind'"):
        cnn.LinearCrossEntropyLoss(input_kind="probs")  # type: ignore[call-arg]


def test_nn_exports_the_linear_module() -> None:
    assert "LinearCrossEntropyLoss" in cnn.__all__
    assert crossent.nn.LinearCrossEntropyLoss is cnn.LinearCrossEntropyLoss
