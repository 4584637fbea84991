"""Alerts: severity from model agreement, dedup, the alert database and notifications."""
