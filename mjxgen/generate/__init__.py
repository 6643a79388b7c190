"""generate_dataset: a GenerationConfig -> the streamed simulation (mjxgen.sim) -> the writer (mjxgen.data)
-> seed 000's stats."""
