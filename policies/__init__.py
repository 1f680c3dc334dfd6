"""Scheduling policies, one small object per extension point."""
