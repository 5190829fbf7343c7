"""The parts of the constraint-solving placer (`backend.place_cpsat`).

- `traffic`: packets between slices and what a placement costs;
- `problem`: PE bins, groups of bins, candidate chips;
- `bisection`: chips for groups by recursive bisection, each cut a CP-SAT model;
- `cores`: cores within a chip by QPE locality;
- `bound`: a lower bound on inter-chip traffic, for the gap.
"""
