"""The loss lab's outputs: the summary table, lab.html / lab.md with plots, lab.json, predictions.

Everything here renders a :class:`crossent.lab.LabResult`; nothing is computed that the table
does not already hold, except the per-class recall averaged over seeds and the pooled
reliability curves drawn in the plots.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
from matplotlib.figure import Figure

from crossent import report
from crossent.lab.config import LOSS_DESCRIPTIONS, METRICS
from crossent.lab.results import LabResult

METRIC_LABELS = {
    "accuracy": "accuracy",
    "macro_recall": "macro recall",
    "minority_recall": "minority recall",
    "log_loss_bits": "log loss (bits)",
    "ece": "ECE",
    "brier": "Brier",
    "epochs_to_converge": "epochs",
}
# which way is better, for highlighting the best cell of each column
HIGHER_IS_BETTER = {
    "accuracy": True,
    "macro_recall": True,
    "minority_recall": True,
    "log_loss_bits": False,
    "ece": False,
    "brier": False,
    "epochs_to_converge": False,
}


def column_label(metric: str, result: LabResult) -> str:
    """A table column's header; the ECE's names its bins (the same as the reliability legend)."""
    if metric == "ece":
        return report.ece_label(result.config.bins)
    return METRIC_LABELS[metric]


def format_mean_std(mean: float, std: float, metric: str) -> str:
    """``0.972 ± 0.007`` (epochs with one decimal)."""
    digits = 1 if metric == "epochs_to_converge" else 3
    return f"{mean:.{digits}f} ± {std:.{digits}f}"


def best_losses(result: LabResult) -> dict[str, str]:
    """For each metric, the loss with the best mean (first on ties)."""
    summary = result.summary()
    best = {}
    for metric in METRICS:
        sign = -1.0 if HIGHER_IS_BETTER[metric] else 1.0
        best[metric] = min(summary, key=lambda loss: sign * summary[loss][metric][0])
    return best


def summary_table(result: LabResult) -> report.Table:
    """The lab's table: one row per loss, ``mean ± std`` over seeds in each metric column."""
    summary = result.summary()
    rows: list[list[str]] = []
    for loss, row in summary.items():
        rows.append([loss] + [format_mean_std(*row[m], m) for m in METRICS])
    data = result.data
    if data.bayes_error is not None and data.bayes_log_loss_bits is not None:
        bayes = ["Bayes limit (exact)", f"{1.0 - data.bayes_error:.3f}"]
        bayes += ["—", "—", f"{data.bayes_log_loss_bits:.3f}", "0", "—", "—"]
        rows.append(bayes)
    caption = f"Test split, mean ± std over {result.config.seeds} seed(s)"
    return report.Table(["loss"] + [column_label(m, result) for m in METRICS], rows, caption)


def describe_setup(result: LabResult) -> str:
    """Paragraphs on the data, the model and the definitions behind each column."""
    config, data = result.config, result.data
    counts = ", ".join(
        f"{name}: {int(n)}" for name, n in zip(data.class_names, data.class_counts, strict=True)
    )
    minority = ", ".join(data.class_names[c] for c in data.minority_classes)
    model = (
        f"an MLP with one hidden layer of {config.hidden} ReLU units"
        if config.model == "mlp"
        else "a linear model (multinomial logistic regression)"
    )
    parts = [
        f"Data: {data.name}, {len(data.labels)} rows, {data.features.shape[1]} features, "
        f"{data.n_classes} classes ({counts}). Minority classes (the smaller half by count): "
        f"{minority}.",
        f"Model: {model}, trained with Adam (learning rate {config.learning_rate:g}, batch "
        f"{config.batch_size}) for at most {config.epochs} epochs; every loss starts from the "
        "same weights and sees the same batches for a given seed. Each seed draws a stratified "
        "60/20/20 train/validation/test split; features are standardised with training "
        "statistics.",
        f"Epochs to converge: training stops when the validation value of the training loss has "
        f"not improved for {config.patience} epochs; the best validation epoch's weights are "
        "restored and that epoch is reported (equal to the epoch budget: still improving when "
        "training ended). Metrics are on the test split, computed by "
        f"crossent.metrics: log loss in bits, top-label ECE with {config.bins} equal-width bins, "
        "Brier score (two classes: mean (p - y)²; more: squared error summed over classes). "
        "Minority recall is the mean recall over the minority classes.",
        "Losses: "
        + "; ".join(f"{loss} = {LOSS_DESCRIPTIONS[loss]}" for loss in config.losses)
        + f" (label smoothing {config.label_smoothing:g}, focal gamma {config.focal_gamma:g}, "
        f"class-balanced beta {config.class_balance_beta:g}).",
    ]
    if data.bayes_error is not None and data.bayes_log_loss_bits is not None:
        parts.append(
            f"Known truth: the Bayes classifier's error is {data.bayes_error:.4f} and the Bayes "
            f"cross-entropy (the lowest log loss any model can reach) is "
            f"{data.bayes_log_loss_bits:.4f} bits, computed exactly from the generating "
            "Gaussians and label-noise rate. Test-split values scatter around these."
        )
    return "\n\n".join(parts)


def curves_figures(result: LabResult) -> list[Figure]:
    """Validation cross-entropy of every loss on one axis, then each loss's own train/val curves.

    Drawn for the first seed (the same split and initial weights for every loss).
    """
    seed = result.runs[0].seed
    first = {run.loss: run for run in result.runs if run.seed == seed}
    common = report.curves_figure(
        {loss: run.val_log_loss_bits for loss, run in first.items()},
        ylabel="validation cross-entropy (bits)",
        title=f"Validation log loss per epoch (seed {seed})",
    )
    own = report.curves_grid_figure(
        {
            loss: {
                "train": run.train_loss,
                "validation": run.val_loss,
            }
            for loss, run in first.items()
        },
        ylabel="training loss (log scale)",
        log_y=True,
        title=f"Each loss on its own scale (seed {seed}); best validation epoch restored",
    )
    return [common, own]


def reliability(result: LabResult) -> Figure:
    """Reliability diagrams side by side, test predictions pooled over seeds."""
    pooled = {
        loss: (
            np.concatenate([run.probs for run in result.runs_of(loss)]),
            np.concatenate([run.labels for run in result.runs_of(loss)]),
        )
        for loss in result.config.losses
    }
    return report.reliability_figure(
        pooled,
        bins=result.config.bins,
        layout="side_by_side",
        title="Top-label reliability on the test split, pooled over seeds",
    )


def recall_bars(result: LabResult) -> Figure:
    """Per-class recall, mean over seeds (seeds whose test split lacks a class are skipped)."""
    series = {}
    for loss in result.config.losses:
        stacked = np.stack([run.per_class_recall for run in result.runs_of(loss)])
        present = np.isfinite(stacked).any(axis=0)
        means = np.zeros(stacked.shape[1])
        means[present] = np.nanmean(stacked[:, present], axis=0)
        series[loss] = means
    minority = set(result.data.minority_classes)
    groups = [
        f"{name}*" if c in minority else name for c, name in enumerate(result.data.class_names)
    ]
    fig = report.bar_figure(
        groups,
        series,
        ylabel="recall (mean over seeds)",
        title="Per-class recall on the test split (* = minority class)",
    )
    width, height = fig.get_size_inches()
    fig.set_size_inches(min(width, 14.0), height)  # ten classes x six losses stays readable
    return fig


def report_sections(result: LabResult, out_dir: Path) -> list[report.Section]:
    """The report's sections; each figure is rendered once, to a PNG in ``out_dir``.

    Both the HTML report (which embeds the PNGs) and the Markdown report (which links them)
    use these files, so no figure is encoded twice.
    """
    best = best_losses(result)
    best_text = "; ".join(f"{METRIC_LABELS[m]}: {loss}" for m, loss in best.items())
    curves_common, curves_own = curves_figures(result)

    def png(fig: Figure, name: str) -> Path:
        return report.save_figure(fig, out_dir / f"lab_{name}.png", dpi=100)

    return [
        report.Section("Setup", [describe_setup(result)]),
        report.Section("Results", [summary_table(result), f"Best mean per column — {best_text}."]),
        report.Section(
            "Training curves",
            [png(curves_common, "validation_log_loss"), png(curves_own, "training_curves")],
        ),
        report.Section("Calibration", [png(reliability(result), "reliability")]),
        report.Section("Per-class recall", [png(recall_bars(result), "per_class_recall")]),
    ]


def write_lab_report(result: LabResult, out_dir: str | Path) -> dict[str, Path]:
    """Write lab.html, lab.md, their PNGs, lab.json and lab_predictions.npz into ``out_dir``.

    ``lab_predictions.npz`` holds every run's test probabilities (``probs_<loss>_seed<k>``) and
    labels (``labels_seed<k>``), so each number in the table can be recomputed independently.
    """
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    title = f"crossent loss lab: {result.data.name}"
    sections = report_sections(result, out)
    files = {
        "html": report.write_html_report(out / "lab.html", title, sections),
        "markdown": report.write_markdown_report(out / "lab.md", title, sections),
    }
    arrays: dict[str, np.ndarray] = {}
    for run in result.runs:
        arrays[f"probs_{run.loss}_seed{run.seed}"] = run.probs
        arrays[f"labels_seed{run.seed}"] = run.labels
    files["predictions"] = out / "lab_predictions.npz"
    np.savez_compressed(files["predictions"], **arrays)  # type: ignore[arg-type]
    files["json"] = out / "lab.json"
    files["json"].write_text(json.dumps(to_jsonable(result.to_dict()), indent=2) + "\n")
    return files


def to_jsonable(value: object) -> object:
    """Replace NaN/inf (not valid JSON) by None, recursively."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {key: to_jsonable(item) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [to_jsonable(item) for item in value]
    return value
