"""What a runner returns from a network's raw outputs, by the model card's task.

- ``segmentation``: the probability of the foreground class, ``(N, 1, H, W)``: channel
  ``foreground_index`` of the softmax over the class channels;
- ``classification``: the softmax over all classes, ``(N, C)`` (a network with spatial outputs
  ``(N, C, H, W)`` has its logits averaged over the image first);
- ``column_heights``: the raw regression channels, ``(N, C, H, W)``.

The per-pixel part of a head (:meth:`OutputHead.dense`) runs inside exported ONNX graphs
(:mod:`nanofind.learn.engine`), before the padding that the network needs is cropped off; the
averaging of a classifier (:meth:`OutputHead.pooled`) runs after it, so that padding never counts.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class OutputHead:
    """The task of a model and, for segmentation, its foreground channel (1 for ``["background", "particle"]``)."""

    task: str = "segmentation"
    foreground_index: int = 1

    @classmethod
    def of(cls, card) -> OutputHead:
        """The head a :class:`~nanofind.learn.card.ModelCard` asks for."""
        if card.task == "segmentation":
            return cls("segmentation", card.foreground_index)
        return cls(card.task, 0)

    def key(self) -> str:
        """Short name of the head, part of the name of cached ONNX exports (their graphs differ by head)."""
        return f"{self.task}:{self.foreground_index}" if self.task == "segmentation" else self.task

    def __call__(self, outputs):
        """The task's output from raw network outputs (a torch tensor (N, C, H, W)), float32."""
        dense = self.dense(outputs)
        if self.task == "classification":
            logits = dense.mean(dim=(2, 3)) if dense.ndim == 4 else dense
            return logits.softmax(dim=1)
        return dense

    def dense(self, outputs):
        """The per-pixel part of the head (torch): foreground probability, or the raw outputs as float32."""
        if self.task not in ("segmentation", "classification", "column_heights"):
            raise ValueError(f"unknown task {self.task!r}")
        outputs = outputs.float()
        if self.task == "segmentation":
            return foreground_probability(outputs, self.foreground_index)
        return outputs

    def pooled(self, dense: np.ndarray) -> np.ndarray:
        """The rest of the head on :meth:`dense`'s cropped output (numpy): a classifier's class probabilities."""
        if self.task != "classification":
            return dense
        logits = dense.mean(axis=(2, 3), dtype=np.float64) if dense.ndim == 4 else dense.astype(np.float64)
        e = np.exp(logits - logits.max(axis=1, keepdims=True))
        return (e / e.sum(axis=1, keepdims=True)).astype(np.float32)


def foreground_probability(logits, index: int = 1):
    """Channel ``index`` of the softmax over the class channels, float32 (N, 1, H, W), of a torch tensor of logits.

    With two classes that channel is the logistic function of the logit difference, which ONNX
    Runtime computes without the channel transposes a softmax needs (and which is what models
    of two classes have always been run with).
    """
    logits = logits.float()
    if logits.shape[1] == 2:
        other = 1 - index
        return (logits[:, index:index + 1] - logits[:, other:other + 1]).sigmoid()
    return logits.softmax(dim=1)[:, index:index + 1]
