"""cmrl: offline RL with consistency-model policies."""
