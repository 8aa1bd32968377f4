"""Messaging: the Matrix bot that transcribes voice messages in its owners' rooms."""
