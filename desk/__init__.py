"""The appointment desk's rules as plain Python: call state, verification, arguments, phones,
spoken phrases. Imports neither LiveKit nor the record package; another domain replaces it
(with its tools and prompts)."""

from desk.call_state import CallState, DeskError
from desk.config import DeskConfig, DeskRecord, Transfer
from desk.desk import AppointmentDesk, Verified

__all__ = ["AppointmentDesk", "CallState", "DeskConfig", "DeskError", "DeskRecord", "Transfer", "Verified"]
