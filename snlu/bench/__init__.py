"""``snlu-bench``: training and inference speed of a recipe's model, measured against the machine's own limit."""
