"""One progress bar for every long job (simulation, training, analysis)."""

from __future__ import annotations


class ProgressBar:
    """A rich progress bar over ``total`` steps with elapsed time and ETA; does nothing when disabled.

    The same calls work either way, so callers never test whether a bar is shown.
    """

    def __init__(self, description: str, total: int, completed: int = 0, enabled: bool = True):
        self._bar = None
        if enabled and total:
            from rich.progress import (
                BarColumn,
                MofNCompleteColumn,
                Progress,
                TextColumn,
                TimeElapsedColumn,
                TimeRemainingColumn,
            )

            self._bar = Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
                                 TimeElapsedColumn(), "eta", TimeRemainingColumn())
            self._task = self._bar.add_task(description, total=total, completed=completed)
            self._bar.start()

    def advance(self, steps: int = 1, description: str | None = None) -> None:
        """Count ``steps`` more as done, optionally with a new description."""
        if self._bar:
            self._bar.update(self._task, advance=steps, **({"description": description} if description else {}))

    def describe(self, description: str) -> None:
        """Change the description shown before the bar."""
        self.advance(0, description)

    def print(self, text: str) -> None:
        """A line above the bar (nothing when disabled)."""
        if self._bar:
            self._bar.console.print(text)

    def close(self) -> None:
        """Stop drawing the bar."""
        if self._bar:
            self._bar.stop()

    def __enter__(self) -> ProgressBar:
        return self

    def __exit__(self, *exc) -> bool:
        self.close()
        return False
