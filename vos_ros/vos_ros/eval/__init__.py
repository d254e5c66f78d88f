"""DAVIS evaluation: the metrics (J, F), reading DAVIS-layout folders, and the evaluation runner."""
