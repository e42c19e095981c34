"""The servers around the MLflow store: its web UI on this machine (ui), and a team's shared server (team)."""
