"""Speech out: text normalised for a voice, spoken inbox summaries and their schedule."""
