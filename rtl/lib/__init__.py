"""Building blocks shared by every subsystem: arbitration and stream glue."""
