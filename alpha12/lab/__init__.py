"""The recalibration lab: replays stored history out of sample through the live code path under
several retraining policies side by side, and says with error bars which one pays.

Modules: `policies` (what a policy is, and parsing them), `oracle` (the best schedule in
hindsight), `stats` (pure statistics of the runs), `runner` (scratch stores, the fan-out,
cancel and resume), `figures` (plotly charts of the results).
"""

from alpha12.errors import UserError


class LabError(UserError):
    """A lab request that cannot run as given (a bad policy, key or value)."""
