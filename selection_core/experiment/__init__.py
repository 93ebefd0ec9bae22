"""Experiments: the plan of select → train → evaluate stages (`plan`) and the results
tables with their intervals (`results`)."""
