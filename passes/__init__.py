"""Graph-to-graph transforms and the pass manager."""
