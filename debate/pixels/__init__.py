"""Image debate after Irving, Christiano and Amodei (2018) on scikit-learn's digits.

data: images and splits; judge: the sparse judge; game: the debate game; players: exact
minimax, MCTS and greedy; table: the paper's Table 2; store: debates into the database;
view: what a person judging sees; runner: a table played, printed and stored for the CLI
and the demo's `pixels` section (debate/demo/pixels.py).
"""
