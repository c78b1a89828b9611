"""The LVTINO sampler (the paper's Algorithm 1) and the schedule it follows."""
