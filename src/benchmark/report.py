"""Figures (forecast vs observed, learning curves) and, later, the HTML report.

Figures are built with ``matplotlib.figure.Figure`` directly (never pyplot), so cells running in
threads can draw at once without sharing global state.
"""

from __future__ import annotations

from typing import Mapping, Sequence

import numpy as np
from matplotlib.figure import Figure


def forecast_figure(ds: Sequence, observed: np.ndarray, predicted: np.ndarray, title: str = "") -> Figure:
    """Observed and predicted values over the test segment (original scale)."""
    fig = Figure(figsize=(10, 3.5), dpi=100)
    ax = fig.add_subplot()
    x = np.asarray(ds)
    ax.plot(x, observed, label="observed", linewidth=1.0, color="#333333")
    ax.plot(x, predicted, label="forecast", linewidth=1.0, color="#d62728", alpha=0.85)
    ax.set_title(title, fontsize=9)
    ax.legend(loc="upper right", fontsize=8)
    ax.grid(alpha=0.3)
    fig.tight_layout()
    return fig


def learning_curve_figure(history: Mapping[str, Sequence[float]], title: str = "") -> Figure:
    """Training and validation loss per epoch (early stopping watches the validation curve)."""
    fig = Figure(figsize=(6, 3.5), dpi=100)
    ax = fig.add_subplot()
    for name, style in (("loss", "-"), ("val_loss", "--")):
        values = list(history.get(name, []))
        if values:
            ax.plot(range(1, len(values) + 1), values, style, label=name)
    ax.set_xlabel("epoch")
    ax.set_ylabel("loss (scaled)")
    ax.set_title(title, fontsize=9)
    ax.legend(fontsize=8)
    ax.grid(alpha=0.3)
    fig.tight_layout()
    return fig
