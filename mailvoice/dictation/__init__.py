"""Live dictation: streaming recognition, endpointing, voice commands, and the session that turns speech into a mail."""
