"""What every benchmark here shares: one interleaved-rounds loop (rounds), one place that
starts the stacks they measure (stack), and what a process has used (procstats)."""
