"""`mobileprune report`: one HTML page a user looks at (where the milliseconds go, before and after).

model.py gathers a pruned model's facts from the library's own functions, profile.py a device
profile's, page.py draws either as one self-contained page (plots.py: the figures).
"""
from .model import ReportError, model_report
from .page import render, write
from .profile import profile_report

__all__ = ["ReportError", "model_report", "profile_report", "render", "write"]
