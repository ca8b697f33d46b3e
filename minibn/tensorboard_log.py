"""TensorBoard event files for a run (`minibn train --tensorboard`), to watch it while it trains.

Once per epoch, into the run folder: the numbers of that epoch's metrics.jsonl line (losses,
accuracies, learning rate, speed, the fractions of gammas near zero) as scalars, and a histogram of
|gamma| for every stage of the network, so the pile of gammas near zero can be watched as it grows.
`tensorboard --logdir runs/` then shows every run folder under runs/ side by side.

The writer is tensorboardX, a small library that needs neither TensorFlow nor PyTorch (the extra
minibn[tensorboard]); viewing the files needs TensorBoard itself (pip install tensorboard).
"""
from __future__ import annotations

from pathlib import Path

import numpy as np

from minibn.analysis import gamma_by_stage

MISSING = 'TensorBoard logging needs tensorboardX: pip install "minibn[tensorboard]"'

# metrics.jsonl field -> TensorBoard tag (the part before "/" groups the charts)
SCALARS = {"train_loss": "loss/train", "test_loss": "loss/test", "train_acc": "accuracy/train",
           "test_acc": "accuracy/test", "lr": "learning_rate", "images_per_s": "speed/images_per_s"}


def summary_writer():
    """tensorboardX's SummaryWriter class; ImportError with the install command when it is missing."""
    try:
        from tensorboardX import SummaryWriter
    except ImportError:
        raise ImportError(MISSING) from None
    return SummaryWriter


class EpochBoard:
    """Writes one epoch at a time into ``folder``; ``first_epoch`` > 1 when a run resumes."""

    def __init__(self, folder: Path, first_epoch: int = 1):
        # purge_step: TensorBoard drops what an earlier process logged from this epoch on (an epoch logged
        # just before a kill, whose checkpoint was never written, is trained and logged again)
        self.writer = summary_writer()(logdir=str(folder), purge_step=first_epoch if first_epoch > 1 else None)

    def write(self, record: dict, model) -> None:
        """The scalars of one metrics.jsonl record and each stage's |gamma|, at step = the epoch."""
        epoch = record["epoch"]
        for field, tag in SCALARS.items():
            self.writer.add_scalar(tag, record[field], epoch)
        for threshold, fraction in record["gamma_below"].items():
            self.writer.add_scalar(f"gamma_below/{threshold}", fraction, epoch)
        for stage, gammas in gamma_by_stage(model).items():  # host copies, once per epoch
            self.writer.add_histogram(f"abs_gamma/{stage.replace(' ', '_')}", np.abs(gammas), epoch)
        self.writer.flush()

    def close(self) -> None:
        self.writer.close()
