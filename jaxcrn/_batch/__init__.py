"""The batch engine: one lane scheduler (`lanes.py`), pluggable steppers
(`steppers.py`), the system the lanes integrate (`system.py`), one plan
(`plan.py`) and the host driver (`driver.py`, `simulate_batch`)."""

from .driver import simulate_batch as simulate_batch
from .plan import BatchPlan as BatchPlan, plan_batch as plan_batch
