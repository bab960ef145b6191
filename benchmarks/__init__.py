"""Side-by-side benchmarks; ``python -m benchmarks.run`` runs them all."""
