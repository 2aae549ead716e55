"""Rollouts: a candidate model version against the champion, decided by an always-valid sequential test."""
