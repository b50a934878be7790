"""The leak door: GitHub's secret-scanning alerts and people's reports of keys found in public."""
