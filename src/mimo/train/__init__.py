"""Training stages (pretrain, sft, mtp) and the pieces they share: schedules, checkpoints, the step loop."""
