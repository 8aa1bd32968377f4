"""The Wyoming protocol server (Home Assistant's Assist): our ASR and TTS engines behind `mailvoice wyoming`."""
