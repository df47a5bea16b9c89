"""Microsoft 365 simulator: Microsoft Graph v1.0 and the identity platform on loopback HTTPS.

Public API (see docs/simulator.md):

    from tools.graphsim import Simulator, ConnectionInfo, ThrottlePolicy
    from tools.graphsim.testing import running_tenant, AdminClient

`python -m tools.graphsim serve --state-dir DIR` runs it as a process.
"""

from .config import ThrottlePolicy
from .simulator import ConnectionInfo, Simulator, SimulatorError

__all__ = ["ConnectionInfo", "Simulator", "SimulatorError", "ThrottlePolicy"]
