"""One module per ``crossent`` sub-command; ``crossent.cli`` registers them."""
