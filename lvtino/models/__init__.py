"""The generative priors: adapters with one contract (clip in, clean clip out) and their loading."""
