"""One colour for each status and state, for every front end (the pages and the terminal).

Colours are named as Streamlit's badges name them; the terminal maps the two names its
library spells differently (see terminal.RICH_NAMES).
"""

from alpha12.vocabulary import Action, EngineState, PairStatus

STATUS_COLOURS = {
    PairStatus.HEALTHY: "green",
    PairStatus.DEGRADED: "red",
    PairStatus.COOLDOWN: "orange",
    PairStatus.INSUFFICIENT_TRADES: "blue",
    PairStatus.NO_MODEL: "gray",
}
STATUS_ICONS = {
    PairStatus.HEALTHY: "check_circle",
    PairStatus.DEGRADED: "trending_down",
    PairStatus.COOLDOWN: "hourglass_top",
    PairStatus.INSUFFICIENT_TRADES: "pending",
    PairStatus.NO_MODEL: "block",
}
# The badge of a serving model without out-of-sample skill (metrics.edge_verdict).
NO_EDGE_COLOUR, NO_EDGE_ICON = "violet", "trending_flat"
ENGINE_COLOURS = {
    EngineState.RUNNING: "green",
    EngineState.WARMING_UP: "blue",
    EngineState.RESTARTING: "orange",
    EngineState.STALLED: "orange",
    EngineState.STOPPED: "red",
}
# Recalibration attempts (what starts a cooldown), as marked on the charts.
ACTION_COLOURS = {
    Action.RECALIBRATED: "#16a34a",
    Action.REJECTED_CHALLENGER: "#f59e0b",
    Action.FAILED: "#dc2626",
    Action.SHADOWED: "#6366f1",
}
WIN, LOSS, OPEN = "#16a34a", "#dc2626", "#6b7280"
