"""Layer 5: one module per stage (each exports its `Stage`), and the pure maths beside them."""
