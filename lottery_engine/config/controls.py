"""The controls a run may train beside the ticket (imp.controls), one entry each: the one place
that lists them. What each control starts from is lottery/controls.py's; the figures, the
write-up and the dashboard take the names, labels and styles from here.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Control:
    """One control series: its name in configs and run folders, its label in figures and text,
    and its line in figures (colour and dash)."""

    name: str
    label: str
    colour: str
    dash: str


CONTROLS: dict[str, Control] = {control.name: control for control in (
    # the ticket's masks on freshly drawn weights: does the initialisation matter?
    Control("random_reinit", "random reinit", "#00A087", "dash"),
    # the ticket's rewind point under random masks of the same per-layer sparsity
    Control("random_prune", "random prune", "#7E6148", "dot"),
)}


def names() -> tuple[str, ...]:
    """Every control's name, in the order figures and tables list them."""
    return tuple(CONTROLS)
