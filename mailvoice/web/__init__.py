"""The web page of `mailvoice serve`: browser dictation over a token-authenticated, origin-checked WebSocket."""
