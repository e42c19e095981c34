"""dcgan-compare: configurations compared over their training seeds (stats: the numbers; runs: what
MLflow holds; report: the table, figure and verdicts; cli: the command)."""
