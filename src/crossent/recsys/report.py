"""Tables and the HTML report of a recommender run, built on :mod:`crossent.report`.

The same rows feed the terminal (rich tables) and ``report.html`` (with PNG loss curves and a
reliability diagram next to it).
"""

from __future__ import annotations

import math
from pathlib import Path

import matplotlib

matplotlib.use("Agg")


from crossent.recsys.results import PROTOCOL, RunResult
from crossent.report import (
    Section,
    Table,
    curves_figure,
    ece_label,
    reliability_figure,
    save_figure,
    write_html_report,
)

LN2 = math.log(2.0)
ECE_BINS = 15  # evaluate_ranking's equal-width bins: the table's ECE and the figure's legend


def _protocol(result: RunResult) -> str:
    """:data:`PROTOCOL`, and which users were held out when training sampled them."""
    held_out, everyone = len(result.split.users("test")), result.split.eligible_users()
    if held_out == everyone:
        return PROTOCOL
    seed = result.info.get("split", {}).get("seed", 0)
    return (
        f"{PROTOCOL}; validation and test on {held_out:,} of the {everyone:,} users with 3 or "
        f"more watches, sampled with seed {seed}, the others training on all their watches"
    )


def retrieval_rows(result: RunResult, ks: tuple[int, ...] = (10, 20)) -> Table:
    """HR/NDCG@K and MRR of the model beside the baselines (full catalogue, watched excluded)."""
    headers = ["model"] + [f"{m}@{k}" for k in ks for m in ("HR", "NDCG")] + ["MRR", "users"]
    rows = []
    for name, metrics in result.retrieval.items():
        row: list[object] = [name]
        for k in ks:
            row += [metrics[f"HR@{k}"], metrics[f"NDCG@{k}"]]
        row += [metrics["MRR"], int(metrics["users"])]
        rows.append(row)
    caption = f"Next-watch retrieval, test. {_protocol(result)}."
    weight = result.info.get("blend", 0.0)
    if weight and "sequence model" in result.retrieval:
        chosen = "chosen on validation" if result.info.get("blend_validation_ndcg@10") else "given"
        caption += (
            f" model: the sequence model and the bag model blended (their log-probabilities "
            f"averaged, bag weight {weight:g}, {chosen})."
        )
    return Table(headers, rows, caption=caption)


def objective_rows(result: RunResult) -> Table:
    """One row per training objective of the same model, then the baselines' metrics."""
    headers = [
        f"objective ({result.trained_kind} model) or baseline", "HR@10", "NDCG@10",
        "HR@20", "MRR", "test CE (bits)", "train time (s)", "peak memory (MiB)", "epochs",
    ]
    rows: list[list[object]] = []
    for name, m in result.objectives.items():
        rows.append([
            name, m["HR@10"], m["NDCG@10"], m["HR@20"],
            m["MRR"], m["test_bits"], m["train_seconds"], m["peak_bytes"] / 2**20,
            int(m["epochs"]),
        ])
    for name, m in result.retrieval.items():
        if name.startswith("model ("):
            continue
        bits = result.baseline_cross_entropy.get(name, {}).get("bits", "")
        rows.append([name, m["HR@10"], m["NDCG@10"], m["HR@20"], m["MRR"], bits, "", "", ""])
    return Table(
        headers,
        rows,
        caption="Training objectives of one model (same data, seed and schedule; test CE = "
        "next-watch cross-entropy of the softmax over unwatched items; peak memory = peak "
        f"resident memory while training, above the memory before it). {_protocol(result)}.",
    )


def cross_entropy_rows(result: RunResult) -> Table:
    """Test next-watch cross-entropy of each candidate model, and its distance from the Bayes
    limit when the truth is known."""
    named = {f"model ({result.trained_kind})": result.cross_entropy}
    named.update(result.baseline_cross_entropy)
    truth = result.cross_entropy
    headers = ["next-watch cross-entropy (test)", "nats", "bits"]
    if "bayes_nats" in truth:
        headers += ["- Bayes limit (bits)", "/ Bayes limit"]
    rows: list[list[object]] = []
    for name, ce in named.items():
        row: list[object] = [f"{name}, softmax over unwatched videos", ce["nats"], ce["bits"]]
        if "bayes_nats" in truth:
            row += [ce["bits"] - truth["bayes_bits"], ce["nats"] / truth["bayes_nats"]]
        rows.append(row)
    if "bayes_nats" in truth:
        for name, ce in named.items():
            rows.append([f"{name}, exact expectation H(p, q)", ce["expected_nats"],
                         ce["expected_bits"], ce["expected_bits"] - truth["bayes_bits"],
                         ce["expected_nats"] / truth["bayes_nats"]])
        rows.append(["truth on the drawn targets", truth["truth_nats"], truth["truth_bits"],
                     truth["truth_bits"] - truth["bayes_bits"], ""])
        rows.append(["Bayes limit: entropy of the truth H(p)", truth["bayes_nats"],
                     truth["bayes_bits"], 0.0, 1.0])
    return Table(headers, rows)


def ranking_rows(result: RunResult) -> Table:
    """Ranking log loss (nats, bits), NE, AUC, ECE of the model, a constant and the truth."""
    headers = ["predictor", "log loss (nats)", "log loss (bits)", "NE", "AUC", ece_label(ECE_BINS)]
    rows: list[list[object]] = []
    for name, m in result.ranking_metrics.items():
        rows.append(
            [
                name,
                m["log_loss_nats"],
                m["log_loss_bits"],
                m["normalized_entropy"],
                m["auc"],
                m["ece"],
            ]
        )
    model = result.ranking_metrics.get("model", {})
    if "truth_nats" in model:
        rows.append(
            [
                "true probabilities",
                model["truth_nats"],
                model["truth_bits"],
                "",
                model["truth_auc"],
                "",
            ]
        )
    return Table(headers, rows, caption="P(watch) on held-out examples")


def _file_name(stage: str) -> str:
    return "".join(c if c.isalnum() else "_" for c in stage).strip("_")


def write_report(
    result: RunResult, out: str | Path, *, title: str = "crossent recommender"
) -> Path:
    """Write ``out/report.html``, ``out/loss_curves.png`` and ``out/reliability.png``."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    titles = {
        "retrieval": ("next-watch cross-entropy (bits)", "Candidate generation: full softmax"),
        "ranking": ("log loss (bits)", "Ranking: P(watch)"),
    }
    pngs: list[Path] = []
    for stage, curves in result.curves.items():
        ylabel, heading = titles.get(stage, ("loss (bits)", stage))
        # keys avoid "val" inside the stage name: the figure dashes names containing "val"
        drawn = {"train": curves.train_bits, "validation": curves.valid_bits}
        name = "loss_curves.png" if stage == "retrieval" else f"{_file_name(stage)}_loss.png"
        pngs.append(save_figure(curves_figure(drawn, ylabel=ylabel, title=heading), out / name))
    ndcg = {
        stage.replace("retrieval", "").strip(" ()") or result.trained_kind: h.valid_ndcg
        for stage, h in result.curves.items()
        if h.valid_ndcg
    }
    if ndcg:
        figure = curves_figure(
            ndcg, ylabel="validation NDCG@10", title="Candidate generation: validation NDCG@10"
        )
        pngs.insert(0, save_figure(figure, out / "validation_ndcg.png"))
    sections: list[Section] = [
        Section(
            "Data",
            [
                f"{result.split.n_users:,} users, {result.split.n_items:,} videos, "
                f"{len(result.watches):,} watches; time-ordered leave-last-out split, "
                f"{len(result.split.users('test')):,} users held out for validation and test."
            ],
        ),
        Section("Candidate generation", [retrieval_rows(result), cross_entropy_rows(result)]),
    ]
    if result.objectives:
        sections.append(Section("Training objectives", [objective_rows(result)]))
    if result.ranking_test is not None:
        probs, label, true_prob = result.ranking_test
        named = {"model": (probs, label)}
        if result.ranking_test_uncalibrated is not None:
            named["model, uncalibrated"] = (result.ranking_test_uncalibrated, label)
        if true_prob is not None:
            named["true probabilities"] = (true_prob, label)
        reliability_png = save_figure(
            reliability_figure(
                named, bins=15, strategy="quantile", ece_bins=ECE_BINS,
                # equal-count bins: watch probabilities crowd below 0.3, uniform bins above
                # that hold a handful of rows each and zig-zag with noise
                title="Reliability of P(watch), test impressions",
            ),
            out / "reliability.png",
        )
        sections.append(Section("Ranking", [ranking_rows(result), reliability_png]))
    sections.append(Section("Training curves (per epoch)", list(pngs)))
    return write_html_report(out / "report.html", title, sections)


def result_tables(result: RunResult) -> dict[str, Table]:
    """The tables a command prints for ``result``, by title, in the order it prints them."""
    tables: dict[str, Table] = {}
    if result.objectives:
        tables["Candidate generation: training objectives (test)"] = objective_rows(result)
    elif result.retrieval:
        tables["Candidate generation (test)"] = retrieval_rows(result)
    if result.cross_entropy:
        tables["Next-watch cross-entropy (test)"] = cross_entropy_rows(result)
    if result.ranking_metrics:
        tables["Ranking: P(watch), test examples"] = ranking_rows(result)
    return tables


def _json_cell(cell: object) -> object:
    """A table cell as JSON: numbers stay numbers (NaN and infinities become null)."""
    if isinstance(cell, bool | int | str) or cell is None:
        return cell
    if isinstance(cell, float):
        return cell if math.isfinite(cell) else None
    return str(cell)


def write_tables_json(result: RunResult, path: str | Path) -> Path:
    """The printed tables as data: ``{title: {"headers", "rows", "caption"}}`` in ``path``."""
    import json

    payload = {
        title: {"headers": [str(header) for header in table.headers],
                "rows": [[_json_cell(cell) for cell in row] for row in table.rows],
                "caption": table.caption}
        for title, table in result_tables(result).items()
    }
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(payload, indent=2) + "\n")
    return path
