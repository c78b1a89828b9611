"""What people read: the HTML quality report of one restoration, and the benchmark table."""
