"""GPT-SoVITS networks (v2 family), written from the published formats; loads official files unchanged."""
