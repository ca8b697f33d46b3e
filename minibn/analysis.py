"""Turning runs into the paper's findings: curves, gamma statistics, sweeps over depth and mode."""
from __future__ import annotations

import csv
import io
from pathlib import Path

import numpy as np

from minibn.backend import to_host
from minibn.files import write_text_atomically
from minibn.nn import BatchNorm2d, Module
from minibn.run_files import read_records, read_small_json

THRESHOLDS = (0.01, 0.05, 0.1)
PAPER_THRESHOLD = 0.05  # the paper counts a gamma as switched off when |gamma| < 0.05

# CIFAR-10 test accuracy (%) after 160 epochs (Frankle et al., ICLR 2021, arXiv 2003.00152). The per-depth figures
# are read off the paper's plots by secondary reports: approximate.
PAPER = {
    "bn": {14: 48.0, 110: 69.5, 866: 82.0},
    "bn (re-implementation)": {14: 46.7, 32: 51.3, 56: 55.2, 110: 65.2},
    "all": {14: 91.0, 110: 93.0},
}


def _pyplot():
    """matplotlib's pyplot, drawing to files only (no screen needed); imported when first plotting."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    return plt


def _save(fig, out: Path) -> Path:
    fig.tight_layout()
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, dpi=120)
    _pyplot().close(fig)
    return out


def read_metrics(run: Path, notice=None) -> list[dict]:
    """The per-epoch records of a run. A torn last line (a write cut short) is left out and reported through
    ``notice`` if given, else a ValueError naming the file."""
    path = Path(run) / "metrics.jsonl"
    if not path.exists():
        raise FileNotFoundError(f"{run} has no metrics.jsonl: is it a minibn run folder?")
    records, torn = read_records(path)
    if torn:
        message = f"{path}: the last line is torn (a write cut short) and was left out"
        if notice is None:
            raise ValueError(f"{message}; `minibn train --resume --out {run}` repairs it")
        notice(message)
    return records


def stage_of(bn_name: str) -> str:
    """'bn1' -> 'stem', 'layer2.0.bn1' -> 'stage 2', 'layer2.0.shortcut.1' -> 'stage 2 shortcut'."""
    if not bn_name.startswith("layer"):
        return "stem"
    stage = f"stage {bn_name[len('layer')]}"
    return f"{stage} shortcut" if ".shortcut." in bn_name else stage


def gamma_by_stage(model: Module) -> dict[str, np.ndarray]:
    """The BatchNorm gammas of a model, grouped by where they sit."""
    groups: dict[str, list[np.ndarray]] = {}
    for name, module in model.named_modules():
        if isinstance(module, BatchNorm2d):
            groups.setdefault(stage_of(name), []).append(to_host(module.weight.data))
    return {stage: np.concatenate(parts) for stage, parts in groups.items()}


def fraction_below(gammas: np.ndarray, thresholds=THRESHOLDS) -> dict[float, float]:
    return {t: float((np.abs(gammas) < t).mean()) for t in thresholds}


def plot_curves(runs: list[Path], out: Path, notice=None) -> Path:
    """Test accuracy and training loss per epoch, one line per run (``notice``: see read_metrics)."""
    plt = _pyplot()
    fig, (acc_ax, loss_ax) = plt.subplots(1, 2, figsize=(11, 4))
    for run in runs:
        records = read_metrics(run, notice)
        epochs = [r["epoch"] for r in records]
        acc_ax.plot(epochs, [100 * r["test_acc"] for r in records], label=Path(run).name)
        loss_ax.plot(epochs, [r["train_loss"] for r in records], label=Path(run).name)
    acc_ax.set(xlabel="epoch", ylabel="test accuracy (%)", title="test accuracy")
    loss_ax.set(xlabel="epoch", ylabel="cross-entropy", title="training loss")
    for ax in (acc_ax, loss_ax):
        ax.grid(alpha=0.3)
    acc_ax.legend(fontsize=8)
    return _save(fig, out)


def plot_gamma_histogram(groups: dict[str, np.ndarray], title: str, out: Path) -> Path:
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(7, 4))
    everything = np.concatenate(list(groups.values()))
    bins = np.linspace(min(everything.min(), 0), max(everything.max(), 1), 41)
    ax.hist([groups[s] for s in groups], bins=bins, stacked=True, label=list(groups))
    ax.axvspan(-PAPER_THRESHOLD, PAPER_THRESHOLD, color="grey", alpha=0.3, zorder=0,
               label=f"|gamma| < {PAPER_THRESHOLD}: {(np.abs(everything) < PAPER_THRESHOLD).mean():.1%} of channels")
    ax.axvline(0, color="black", lw=0.8)
    ax.set(xlabel="gamma", ylabel="channels", title=title)
    ax.legend(fontsize=8, loc="upper right")
    return _save(fig, out)


def collect_results(root: Path) -> list[dict]:
    """One row per finished run under ``root`` (folders with summary.json); `minibn sweep` keeps only its
    grid's runs (minibn.launch.runs.grid_results)."""
    return [result_row(summary_path.parent) for summary_path in sorted(Path(root).glob("*/summary.json"))]


def result_row(run: Path) -> dict:
    """The results row of a finished run folder; ValueError naming it if its files cannot be read."""
    try:
        summary, config = read_small_json(run / "summary.json"), read_small_json(run / "config.json")
        return {"depth": summary["depth"], "train": summary["train"], "seed": config["seed"],
                "epochs": summary["epochs"], "train_images": config["train_images"],
                "test_images": config["test_images"], "best_test_acc": summary["best_test_acc"],
                "final_test_acc": summary["final_test_acc"], "trainable": summary["trainable_parameters"],
                "gamma_below_0.1": summary["gamma_below"]["0.1"], "seconds": summary["train_seconds"],
                "run": run.name}
    except (OSError, ValueError, KeyError, TypeError) as error:
        raise ValueError(f"cannot read the run {run}: {error}") from None


def write_results(rows: list[dict], root: Path) -> tuple[Path, Path]:
    """results.csv and results.md (mean over seeds, with the paper's numbers beside ours)."""
    csv_path, md_path = root / "results.csv", root / "results.md"
    table = io.StringIO(newline="")
    writer = csv.DictWriter(table, fieldnames=list(rows[0]))
    writer.writeheader()
    writer.writerows(rows)
    write_text_atomically(csv_path, table.getvalue())
    lines = ["| depth | train | seeds | epochs | train images | final test acc (%) | gammas below 0.1 in abs "
             "| paper (160 epochs, full data) |",
             "|---|---|---|---|---|---|---|---|"]
    for (depth, mode), group in group_rows(rows).items():
        accs = [100 * r["final_test_acc"] for r in group]
        spread = f" ± {np.std(accs):.1f}" if len(accs) > 1 else ""
        paper = PAPER.get(mode, {}).get(depth)
        lines.append(f"| {depth} | {mode} | {len(group)} | {group[0]['epochs']} | {group[0]['train_images']} | "
                     f"{np.mean(accs):.1f}{spread} | {np.mean([r['gamma_below_0.1'] for r in group]):.1%} | "
                     f"{'' if paper is None else f'about {paper:g}'} |")
    write_text_atomically(md_path, "\n".join(lines) + "\n")
    return csv_path, md_path


def group_rows(rows: list[dict]) -> dict[tuple[int, str], list[dict]]:
    groups: dict[tuple[int, str], list[dict]] = {}
    for row in sorted(rows, key=lambda r: (r["train"], r["depth"])):
        groups.setdefault((row["depth"], row["train"]), []).append(row)
    return groups


def plot_accuracy_vs_depth(rows: list[dict], out: Path, with_paper: bool = True) -> Path:
    """Final test accuracy against depth, one line per mode (mean and spread over seeds), and the
    paper's numbers dashed in the same colour."""
    plt = _pyplot()
    colors = {"bn": "C1", "all": "C0", "output": "C2", "random": "C3", "bn+output": "C4"}
    fig, ax = plt.subplots(figsize=(7, 4.5))
    by_mode: dict[str, list[tuple[int, float, float]]] = {}
    for (depth, mode), group in group_rows(rows).items():
        accs = [100 * r["final_test_acc"] for r in group]
        by_mode.setdefault(mode, []).append((depth, float(np.mean(accs)), float(np.std(accs))))
    for mode, points in by_mode.items():
        depths, means, stds = zip(*sorted(points))
        ax.errorbar(depths, means, yerr=stds, marker="o", capsize=3, color=colors.get(mode), label=f"minibn: {mode}")
    shown = sorted({r["depth"] for r in rows})
    if with_paper:
        for name, points in PAPER.items():
            depths = sorted(d for d in points if d <= 2 * max(shown))
            if depths:
                mode = name.split()[0]
                ax.plot(depths, [points[d] for d in depths], ls="--" if name == mode else ":", marker="x",
                        color=colors.get(mode), alpha=0.7, label=f"paper: {name} (160 epochs, all data)")
                shown = sorted(set(shown) | set(depths))
    epochs = sorted({r["epochs"] for r in rows})
    images = sorted({r["train_images"] for r in rows})
    ax.set_xscale("log")
    ax.set_xticks(shown, [str(d) for d in shown])
    ax.minorticks_off()
    ax.set(xlabel="depth", ylabel="test accuracy (%)",
           title=f"CIFAR-10 accuracy vs depth (minibn: {'/'.join(map(str, epochs))} epochs, "
                 f"{'/'.join(f'{n:,}' for n in images)} training images)")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7)
    return _save(fig, out)
