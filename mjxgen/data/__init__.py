"""The data path on the host: the host batch, file formats, the background writer and its crash-safe shards,
run statistics, opening and describing files, and TrajectoryDataset."""
