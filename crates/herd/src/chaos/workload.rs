//! The workload `herd chaos random --workload` runs beside its faults, and its checkers.
