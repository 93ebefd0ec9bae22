"""The spine: the one stage runner, the run store, configs declared once, progress, errors,
devices, apportioning and the code sandbox. Everything else stands on it."""
