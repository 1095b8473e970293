"""The simulated shop: customers, orders, deliveries and an SMS history, exported day by day.

``simulate`` writes the landing files a real shop would export (with the mess real exports
have) and, elsewhere, the hidden truth needed to judge the models built on them.
"""

from pipelines.simulator.world import SimulationSummary, simulate

__all__ = ["SimulationSummary", "simulate"]
