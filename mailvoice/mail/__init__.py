"""Mail: safe parsing, voicemail detection, caller extraction, header safety, sources and sinks."""
