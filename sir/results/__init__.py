"""The results table: scripted demos, a measured recipe per task, the best model evaluated on fixed seeds."""
