"""Conversation flows, steward commands and scheduled jobs. No Flask request objects here."""
