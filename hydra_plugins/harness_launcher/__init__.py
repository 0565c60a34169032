"""Hydra launcher plugin `harness`: an @hydra.main app's --multirun on the harness's pool (see launcher.py)."""
