"""Camera images of the arm scenes."""
