"""Tournaments: debater sets and schedules expanded into experiments (config.py,
schedule.py) and run round by round (run.py). The ratings and the strength-accuracy curve
are in debate.analysis.strength."""
