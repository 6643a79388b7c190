"""Learning from the data: models, minibatches, training, checkpoints and evaluation in simulation."""
