"""Examples that use AgeMem-Gym from outside the package (not installed; run them from the repository root)."""
