"""Keras callbacks that models add to their own training (``CTRModel.training_callbacks``)."""
