"""RL with verifiable rewards: the GRPO loss, dynamic sampling with the easy-data pool, and the Seamless Rollout
Engine's scheduler with its trace-driven simulator."""
