"""The terminal every command prints to."""

from rich.console import Console

console = Console()
if not console.is_terminal:
    # Logs and CI have no width; 80 columns would cut flow, experiment and reason names.
    console.width = max(console.width, 140)
