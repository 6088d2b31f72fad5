"""theory: SGD on linear regression under source/capacity conditions (see DESIGN.md)."""
