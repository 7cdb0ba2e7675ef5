import torch

# Two cores on CI; tests should not oversubscribe them.
torch.set_num_threads(1)
