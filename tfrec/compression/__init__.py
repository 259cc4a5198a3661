"""CHIME compression model: backbone, interest representation and compression modules."""
