"""Watching traffic: the prediction log, drift statistics, reference profiles and reports."""
